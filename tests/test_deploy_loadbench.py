"""`moodmoji bench load`: bounds, the local-only rule, and short real fault runs that lose
nothing: a worker SIGKILLed, one SIGSTOPped, Redis crashed with and without an AOF."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import subprocess
import sys

import pytest
import redis
from worker_helpers import REDIS_URL, REPO, tiny_models, unique_prefix

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
        ({"faults": ("steady", "flood")}, "--faults are some of steady, kill, stop"),
        ({"faults": ("stop",), "workers": 1}, "--faults stop needs --workers 2"),
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


def _bench_environment(monkeypatch):
    # The workers read the claim timeout from the environment, like the bench's own settings.
    monkeypatch.setenv("MOODMOJI_QUEUE_CLAIM_IDLE_MS", "1000")
    monkeypatch.setenv("MOODMOJI_WORKER_HEARTBEAT_S", "0.3")
    monkeypatch.setenv("MOODMOJI_MODELS_DIR", "/nonexistent-moodmoji-models")
    settings = WorkerSettings(redis_url=REDIS_URL)
    assert settings.queue_claim_idle_ms == 1000
    return settings


def _holds(report) -> None:
    assert report.submitted == 40  # 20 requests/s for 2 s, split over 2 clients
    assert report.lost == report.misrouted == report.stuck == report.refused_while_up == 0
    assert report.ok + report.errors + report.refused == report.submitted
    assert report.ok > 0 and report.answered_rate > 0


@pytest.mark.redis
def test_two_clients_two_workers_and_a_killed_worker_lose_nothing(tiny_models, monkeypatch):
    settings = _bench_environment(monkeypatch)
    prefix = unique_prefix()
    reports = measure(plan(), settings, tiny_models["positive"], prefix=prefix)

    assert [r.name for r in reports] == ["steady", "kill"]
    for report in reports:
        _holds(report)
    kill = reports[1]
    assert kill.events[0].startswith("worker bench-0 SIGKILLed at")
    assert kill.events[1].startswith("started again at")
    body = report_markdown(reports, plan(), settings, "tiny")
    assert "| kill | 2 | 20 | 40 |" in body and "SIGKILLed" in body
    leftovers = redis.Redis.from_url(REDIS_URL)
    try:  # the run deleted its own keys (other benches may be running beside it)
        assert not list(leftovers.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        leftovers.close()


@pytest.mark.redis
def test_a_stopped_worker_and_redis_crashes_with_and_without_aof_lose_nothing(
    tiny_models, monkeypatch
):
    settings = _bench_environment(monkeypatch)
    faults = plan(faults=("stop", "redis", "redis-aof"), stop_for=1.5, redis_down=0.5)
    reports = measure(faults, settings, tiny_models["positive"], prefix=unique_prefix())

    assert [r.name for r in reports] == ["stop", "redis", "redis-aof"]
    for report in reports:
        _holds(report)
    stop, crash, aof = reports
    assert stop.events[0].startswith("worker bench-1 SIGSTOPped at")
    assert "no persistence" in crash.events[0] and "AOF rewritten" in aof.events[0]
    for report in (crash, aof):
        assert report.recovered_s is not None and report.recovered_s < 5
    body = report_markdown(reports, faults, settings, "tiny")
    assert "| redis-aof | 2 | 20 | 40 |" in body
