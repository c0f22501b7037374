"""The retrain runner (issue 16, item 6): hostile job entries, restarts, dead runners.

A real runner (`serve_retrain_jobs`, in a thread with its own Redis client) against the
real job stream: a request id that climbs out of the job folder, entries that are not
requests, its own poison left pending by a crash, a job a dead runner held.
"""

# ruff: noqa: F401, F811

import contextlib
import json
import subprocess
import sys
import threading
import time

import pytest
import redis
from worker_helpers import REDIS_URL, REPO, redis_prefix, retrain_settings

from worker.retraining.queue import (
    GROUP,
    RetrainKeys,
    RetrainRequest,
    _KeepClaimed,
    run_request,
    serve_retrain_jobs,
)

pytestmark = pytest.mark.redis


def settings_for(tmp_path, prefix, **overrides):
    values = {"redis_url": REDIS_URL, "queue_prefix": prefix, "worker_id": "runner-1"}
    return retrain_settings(tmp_path, tmp_path / "registry", **{**values, **overrides})


class Runner:
    """serve_retrain_jobs in a thread until stopped; `error` holds what ended it early."""

    def __init__(self, settings) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(settings,), daemon=True)

    def _serve(self, settings) -> None:
        try:
            serve_retrain_jobs(settings, self.stopped.is_set, self.client, isolated=False)
        except BaseException as error:
            self.error = error

    def __enter__(self) -> "Runner":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopped.set()
        self.thread.join(30)
        self.client.close()


def wait_until(condition, timeout: float = 20.0):
    give_up = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > give_up:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return value


def events_of(prefix: str, request_id: str) -> list:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        entries = client.xrange(RetrainKeys(prefix).events(request_id))
        return [json.loads(fields[b"event"]) for _id, fields in entries]
    finally:
        client.close()


def pending(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.xpending(RetrainKeys(prefix).jobs, GROUP)["pending"]
    finally:
        client.close()


def add_job(prefix: str, payload) -> str:
    client = redis.Redis.from_url(REDIS_URL)
    with contextlib.suppress(redis.ResponseError):  # the group may be there already
        client.xgroup_create(RetrainKeys(prefix).jobs, GROUP, id="0", mkstream=True)
    try:
        return client.xadd(RetrainKeys(prefix).jobs, {"request": payload}).decode()
    finally:
        client.close()


def test_a_request_id_that_climbs_out_writes_nothing_outside(tmp_path, redis_prefix):
    settings = settings_for(tmp_path / "runner", redis_prefix)
    keys = RetrainKeys(redis_prefix)
    client = redis.Redis.from_url(REDIS_URL)
    for hostile in ("../../escape", str(tmp_path / "absolute")):
        client.set(keys.upload(hostile), b"PK not really a zip")
        add_job(redis_prefix, json.dumps({"request_id": hostile}))
    good = RetrainRequest(request_id="rtgood")
    add_job(redis_prefix, good.model_dump_json())
    before = {p for p in tmp_path.rglob("*")}
    with Runner(settings) as runner:
        wait_until(lambda: events_of(redis_prefix, "rtgood"))
        assert runner.error is None
    outside = {p for p in tmp_path.rglob("*")} - before
    jobs = settings.retrain_dir.resolve()
    assert all(p.resolve().is_relative_to(jobs) for p in outside), sorted(outside)
    assert not (tmp_path / "absolute").exists() and pending(redis_prefix) == 0
    # Even a request built past validation cannot leave MOODMOJI_RETRAIN_DIR.
    sneaky = RetrainRequest.model_construct(request_id="../../escape", labels=["positive"])
    final = run_request(client, settings, sneaky, isolated=False)
    assert final.state == "failed" and "not a plain name" in final.message
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    client.close()


def test_entries_that_are_not_requests_never_stop_the_runner(tmp_path, redis_prefix):
    settings = settings_for(tmp_path, redis_prefix)
    # Its own poison from before a crash: read by runner-1, never acknowledged.
    add_job(redis_prefix, b"\xff not json at all")
    client = redis.Redis.from_url(REDIS_URL)
    client.xreadgroup(GROUP, "runner-1", {RetrainKeys(redis_prefix).jobs: ">"}, count=1)
    add_job(redis_prefix, json.dumps({"request_id": "rtnamed", "labels": "all of them"}))
    add_job(redis_prefix, "[" * 50_000)
    add_job(redis_prefix, RetrainRequest(request_id="rtafter").model_dump_json())
    for restart in range(3):  # before: 3 of 3 restarts crashed on the pending poison
        with Runner(settings) as runner:
            if restart == 0:
                wait_until(lambda: events_of(redis_prefix, "rtafter"))
            time.sleep(0.3)
            assert runner.error is None and runner.thread.is_alive()
    assert pending(redis_prefix) == 0
    [named] = events_of(redis_prefix, "rtnamed")
    assert named["state"] == "failed" and "not a valid retrain request" in named["message"]
    [after] = events_of(redis_prefix, "rtafter")
    assert after["state"] == "failed" and "upload expired" in after["message"]  # it ran
    client.close()


def test_a_dead_runners_job_is_taken_over_by_another(tmp_path, redis_prefix):
    settings = settings_for(tmp_path, redis_prefix, worker_id="runner-2", retrain_claim_idle_s=1)
    add_job(redis_prefix, RetrainRequest(request_id="rtorphan").model_dump_json())
    client = redis.Redis.from_url(REDIS_URL)
    client.xreadgroup(GROUP, "runner-1", {RetrainKeys(redis_prefix).jobs: ">"}, count=1)
    time.sleep(1.1)  # runner-1 died holding it
    with Runner(settings) as runner:
        [event] = wait_until(lambda: events_of(redis_prefix, "rtorphan"))
        assert runner.error is None
    assert event["state"] == "failed" and "upload expired" in event["message"]  # runner-2 ran it
    assert pending(redis_prefix) == 0
    client.close()


def test_a_live_runner_keeps_its_job(tmp_path, redis_prefix):
    settings = settings_for(tmp_path, redis_prefix, retrain_claim_idle_s=1)
    entry = add_job(redis_prefix, RetrainRequest(request_id="rtbusy").model_dump_json())
    client = redis.Redis.from_url(REDIS_URL)
    jobs = RetrainKeys(redis_prefix).jobs
    client.xreadgroup(GROUP, "runner-1", {jobs: ">"}, count=1)
    with _KeepClaimed(client, settings, jobs, "runner-1", entry):
        time.sleep(2.0)  # a long job, twice the claim time
        _cursor, taken, *_ = client.xautoclaim(jobs, GROUP, "runner-2", 1000, count=1)
    assert taken == []
    [held] = client.xpending_range(jobs, GROUP, "-", "+", 1)
    assert held["consumer"] == b"runner-1" and held["times_delivered"] == 1
    client.close()


def test_the_documented_worker_id_option_exists():
    done = subprocess.run(
        [sys.executable, "-m", "moodmoji.cli", "retrain", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--worker-id" in done.stdout
