"""`moodmoji bench load`: bounds, the local-only rule, and a short real run that loses nothing."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import subprocess
import sys

import pytest
import redis
from worker_helpers import REDIS_URL, REPO, tiny_models

from moodmoji.errors import MoodmojiError
from worker import WorkerSettings
from worker.loadbench import LoadPlan, check_plan, measure, report_markdown


def plan(**overrides) -> LoadPlan:
    values = {"clients": 2, "workers": 2, "rate": 20.0, "seconds": 2.0, "restart_after": 0.5}
    return LoadPlan(**{**values, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clients": 0}, "--clients must be between 1 and 16"),
        ({"workers": 9}, "--workers must be between 1 and 8"),
        ({"seconds": 601}, "--seconds must be between"),
        ({"rate": 0}, "--rate must be between"),
        ({"capacity_rate": -1}, "--capacity-rate must be between"),
    ],
)
def test_plans_out_of_bounds_are_refused(overrides, message):
    with pytest.raises(MoodmojiError, match=message):
        check_plan(plan(**overrides), WorkerSettings(redis_url=REDIS_URL))


@pytest.mark.parametrize(
    "url",
    ["redis://10.1.2.3:6379/0", "redis://example.com:6379/0", "rediss://127.0.0.1:6379/0"],
)
def test_only_a_redis_on_this_machine_is_used(url):
    with pytest.raises(MoodmojiError, match="only talks to a Redis on this machine"):
        check_plan(plan(), WorkerSettings(redis_url=url))


def test_the_command_says_so_in_one_line_before_starting_anything():
    done = subprocess.run(
        [sys.executable, "-m", "moodmoji.cli", "bench", "load", "--no-write"],
        env={"MOODMOJI_REDIS_URL": "redis://192.168.1.5:6379/0", "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("moodmoji: error: bench load only talks to a Redis")


@pytest.mark.redis
def test_two_clients_two_workers_and_a_killed_worker_lose_nothing(tiny_models, monkeypatch):
    # The workers read the claim timeout from the environment, like the bench's own settings.
    monkeypatch.setenv("MOODMOJI_QUEUE_CLAIM_IDLE_MS", "1000")
    monkeypatch.setenv("MOODMOJI_WORKER_HEARTBEAT_S", "0.3")
    monkeypatch.setenv("MOODMOJI_MODELS_DIR", "/nonexistent-moodmoji-models")
    settings = WorkerSettings(redis_url=REDIS_URL)
    assert settings.queue_claim_idle_ms == 1000
    reports = measure(plan(), settings, tiny_models["positive"])

    assert [r.name for r in reports] == ["steady", "failover"]
    for report in reports:
        assert report.submitted == 40  # 20 requests/s for 2 s, split over 2 clients
        assert report.lost == 0 and report.misrouted == 0
        assert report.ok + report.errors + report.refused == report.submitted
        assert report.ok > 0 and report.answered_rate > 0
    failover = reports[1]
    assert failover.events[0].startswith("worker bench-0 SIGKILLed at")
    assert failover.events[1].startswith("started again at")
    body = report_markdown(reports, plan(), settings, "tiny")
    assert "| failover | 2 | 20 | 40 |" in body and "SIGKILLed" in body
    leftovers = redis.Redis.from_url(REDIS_URL)
    try:  # each run deletes its own keys
        assert not list(leftovers.scan_iter(match="moodmoji-loadbench-*", count=1000))
    finally:
        leftovers.close()
