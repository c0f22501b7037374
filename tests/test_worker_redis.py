"""The queue on a real Redis: round trips, crashes, garbage, duplicates, backpressure, reloads."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import asyncio
import contextlib
import json
import signal
import time

import pytest
import redis as sync_redis
from worker_helpers import (
    PoisonedSampler,
    assert_images,
    make_registry,
    queue_settings,
    redis_prefix,
    reply_stream_results,
    running,
    samplers,
    spawn_worker,
    stop_process,
    tiny_models,
    wait_for_workers,
)

from worker import (
    ErrorCode,
    ModelRegistry,
    RedisStreamsTransport,
    WorkerBusy,
    WorkerClient,
)
from worker.localredis import LocalRedis
from worker.service import SamplingService

pytestmark = pytest.mark.redis


async def test_a_request_round_trips_and_the_worker_reports_health(redis_prefix, samplers):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    service = SamplingService(transport, settings, samplers=samplers, worker_id="w1")
    async with running(service), WorkerClient(transport, settings) as client:
        result = await client.generate("positive", seed=5, count=2, size=48)
        beats = await wait_for_workers(transport, ["w1"])
    assert_images(result, 2, 48)
    assert result.worker_id == "w1" and result.model_version == samplers["positive"].version
    assert beats["w1"]["models"]["positive"] == samplers["positive"].version
    assert "positive" in beats["w1"]["queue_lag"]
    metrics = service.metrics.registry
    assert (
        metrics.get_sample_value(
            "moodmoji_worker_requests_total", {"label": "positive", "outcome": "sampled"}
        )
        == 1
    )
    assert await transport.redis.xpending(transport.request_stream("positive"), "workers") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    await transport.close()


async def test_garbage_and_poison_go_to_the_dead_letter_stream_while_the_rest_flow(
    redis_prefix,
    samplers,
):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    stream = transport.request_stream("positive")
    await transport.redis.xadd(stream, {"junk": "no request field"})
    await transport.redis.xadd(stream, {"request": "{not json"})
    newer = json.dumps({"v": 99, "request_id": "from-the-future", "reply_to": client.reply_to})
    await transport.redis.xadd(stream, {"request": newer})
    poisoned = {"positive": PoisonedSampler(samplers["positive"])}
    async with running(SamplingService(transport, settings, samplers=poisoned)):
        results = await asyncio.gather(
            *(client.generate("positive", seed=s, size=32) for s in (1, 666, 2))
        )
        refused = await asyncio.wait_for(_result_of(transport, client, "from-the-future"), 10)
    assert results[0].ok and results[2].ok
    assert results[1].error_code == ErrorCode.SAMPLING_FAILED
    assert refused.error_code == ErrorCode.INVALID_REQUEST and "version 99" in refused.error_message
    reasons = [letter.reason for letter in await transport.dead_letters()]
    assert len(reasons) == 4
    assert any("not JSON" in r for r in reasons)
    assert any("version 99" in r for r in reasons)
    assert any("latent exploded" in r for r in reasons)
    await client.close()
    await transport.close()


async def _result_of(transport, client, request_id):
    while True:
        for result in await reply_stream_results(transport, client.reply_to):
            if result.request_id == request_id:
                return result
        await asyncio.sleep(0.05)


async def test_an_entry_that_keeps_killing_workers_is_dead_lettered(redis_prefix, samplers):
    settings = queue_settings(redis_prefix, queue_claim_idle_ms=100, queue_max_deliveries=2)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    request = client.request("positive", seed=3)
    await transport.submit(request)
    # Two workers took it and died before answering: one read, one reclaim.
    stream, group = transport.request_stream("positive"), settings.queue_group
    await transport.redis.xgroup_create(stream, group, id="0")
    [[_, [(entry_id, _)]]] = await transport.redis.xreadgroup(group, "dead-1", {stream: ">"})
    await transport.redis.xclaim(stream, group, "dead-2", 0, [entry_id])
    await asyncio.sleep(0.15)
    async with running(SamplingService(transport, settings, samplers=samplers)) as service:
        result = await client.submit(request, timeout=10)
    assert result.error_code == ErrorCode.TOO_MANY_DELIVERIES
    assert service.requests_sampled == 0
    [letter] = await transport.dead_letters()
    assert letter.delivery_count == 3 and "delivered 3 times" in letter.reason
    await client.close()
    await transport.close()


async def test_a_duplicate_request_id_is_answered_from_the_result_key(redis_prefix, samplers):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    service = SamplingService(transport, settings, samplers=samplers)
    async with running(service), WorkerClient(transport, settings) as client:
        request = client.request("positive", seed=21, size=32)
        first = await client.submit(request)
        assert await transport.redis.exists(transport.result_key(request.request_id))
        again = await client.submit(request)
    assert again.replayed and again.images == first.images
    assert service.requests_sampled == 1
    await transport.close()


async def test_backpressure_refuses_work_past_the_queue_limit(redis_prefix):
    settings = queue_settings(redis_prefix, queue_max_length=5)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    for seed in range(5):  # nobody serves: they wait in the queue
        await transport.submit(client.request("positive", seed=seed))
    with pytest.raises(WorkerBusy, match=r"busy, try again in \d+ s"):
        await client.generate("positive", seed=9)
    assert await transport.queue_depth("positive") == 5
    await client.close()
    await transport.close()


async def test_hot_reload_from_a_redis_key_with_requests_in_flight(
    redis_prefix,
    tmp_path,
    tiny_models,
):
    settings = queue_settings(redis_prefix, registry_poll_s=0.05)
    make_registry(tmp_path / "registry", tiny_models)
    key = f"{redis_prefix}:registry:active"
    keys = sync_redis.Redis.from_url(settings.redis_url, decode_responses=True)
    registry = ModelRegistry(tmp_path / "registry", redis_client=keys, key=key)
    registry.activate("v1")
    transport = RedisStreamsTransport(settings)
    service = SamplingService(transport, settings, registry=registry)
    async with running(service), WorkerClient(transport, settings) as client:
        before = await client.generate("positive", seed=1, size=32)
        in_flight = [
            asyncio.create_task(client.generate("positive", seed=s, size=32)) for s in range(60)
        ]
        keys.set(key, "v2")  # one SET switches every worker watching the key
        results = await asyncio.gather(*in_flight)
        while service.model_version != "v2":
            await asyncio.sleep(0.05)
        after = await client.generate("positive", seed=1, size=32)
    assert all(r.ok for r in results) and len({r.request_id for r in results}) == 60
    assert before.model_version != after.model_version
    assert before.images != after.images
    keys.close()
    await transport.close()


async def _submit_all(client: WorkerClient, seeds, size=32):
    return await asyncio.gather(*(client.generate("positive", seed=s, size=size) for s in seeds))


def _assert_exactly_once(results, client: WorkerClient):
    """Every request answered once: the client resolved one answer per request and saw
    none it did not ask for (it trims its reply stream as it reads). Second answers come
    only from resubmitting after a reconnection, which a Redis read timeout on a starved
    machine also is; the client drops them."""
    assert all(r.ok for r in results), [r.error_message for r in results if not r.ok][:3]
    assert len({r.request_id for r in results}) == len(results)
    assert client.stats["answered"] == len(results)
    assert client.stats["foreign"] == 0
    if client.transport.connection_epoch == 0:
        assert client.stats["duplicate"] == 0


async def test_1000_requests_from_4_clients_to_2_worker_processes_come_back_once(
    redis_prefix,
    tmp_path,
    tiny_models,
):
    # The default claim timeout: with the helpers' 1 s, a batch slower than that on a busy
    # CPU is taken over by the other worker while still alive, and answered twice.
    settings = queue_settings(redis_prefix, queue_max_length=2000, queue_claim_idle_ms=15_000)
    make_registry(tmp_path / "registry", tiny_models)
    workers = [spawn_worker(settings, tmp_path / "registry", f"w{i}") for i in range(2)]
    transports = [RedisStreamsTransport(settings) for _ in range(4)]
    try:
        await wait_for_workers(transports[0], ["w0", "w1"])
        clients = [WorkerClient(t, settings) for t in transports]
        for client in clients:
            await client.start()
        per_client = await asyncio.gather(
            *(_submit_all(c, range(i * 250, (i + 1) * 250)) for i, c in enumerate(clients))
        )
        for client, results in zip(clients, per_client, strict=True):
            _assert_exactly_once(results, client)
        served_by = {r.worker_id for results in per_client for r in results}
        assert served_by == {"w0", "w1"}
        # Heartbeats trim what is acknowledged, so the stream does not keep all 1,000.
        stream = transports[0].request_stream("positive")
        give_up = time.monotonic() + 10
        while await transports[0].redis.xlen(stream) >= 1000 and time.monotonic() < give_up:
            await asyncio.sleep(0.1)
        assert await transports[0].redis.xlen(stream) < 1000
        for client in clients:
            await client.close()
    finally:
        for process in workers:
            assert stop_process(process, signal.SIGTERM) == 0  # a clean SIGTERM shutdown
        for transport in transports:
            await transport.close()


async def test_a_worker_killed_mid_batch_loses_nothing(redis_prefix, tmp_path, tiny_models):
    # A long request timeout: the survivor loads its models after the kill, on a CPU
    # that may be shared with much else.
    settings = queue_settings(redis_prefix, queue_max_length=2000, queue_request_timeout_s=120)
    make_registry(tmp_path / "registry", tiny_models)
    doomed = spawn_worker(settings, tmp_path / "registry", "doomed", "--max-batch", "8")
    transport = RedisStreamsTransport(settings)
    survivor = None
    try:
        await wait_for_workers(transport, ["doomed"])
        client = WorkerClient(transport, settings)
        await client.start()
        work = asyncio.create_task(_submit_all(client, range(300), size=128))
        stream = transport.request_stream("positive")
        # Kill it mid-stream: once it has answered some (only it can, so far) and while it
        # holds a batch it has not answered. Waiting for the first answer matters: the
        # worker reads the next batch ahead, so it holds one before it answers any.
        give_up = time.monotonic() + 60
        while True:
            summary = await transport.redis.xpending(stream, settings.queue_group)
            held = {c["name"]: c["pending"] for c in summary["consumers"]}
            if client.stats["answered"] > 0 and held.get("doomed", 0) > 0:
                break
            assert not work.done(), "the doomed worker answered everything before the kill"
            assert time.monotonic() < give_up, "the doomed worker never answered"
            await asyncio.sleep(0.002)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        survivor = spawn_worker(settings, tmp_path / "registry", "survivor")
        results = await asyncio.wait_for(work, 60)
        _assert_exactly_once(results, client)
        assert {r.worker_id for r in results} == {"doomed", "survivor"}
        summary = await transport.redis.xpending(stream, settings.queue_group)
        assert summary["pending"] == 0
        await client.close()
    finally:
        stop_process(doomed, signal.SIGKILL)
        if survivor is not None:
            stop_process(survivor)
        await transport.close()


async def test_workers_and_clients_ride_out_a_redis_restart_under_load(
    redis_prefix,
    tmp_path,
    tiny_models,
):
    server = LocalRedis(tmp_path)
    server.start()
    settings = queue_settings(redis_prefix, redis_url=server.url, queue_max_length=2000)
    make_registry(tmp_path / "registry", tiny_models)
    worker = spawn_worker(settings, tmp_path / "registry", "steady")
    transport = RedisStreamsTransport(settings)
    try:
        await wait_for_workers(transport, ["steady"])
        client = WorkerClient(transport, settings)
        await client.start()
        first_wave = asyncio.create_task(_submit_all(client, range(150), size=128))
        while not any(r.request_id for r in await reply_stream_results(transport, client.reply_to)):
            await asyncio.sleep(0.01)
        server.kill()  # no persistence: queued work and results die with it
        await asyncio.sleep(0.5)
        server.start()
        second_wave = await _submit_all(client, range(150, 200), size=32)
        results = await asyncio.wait_for(first_wave, 60)
        # Resubmitted requests may be answered twice on the stream; each future resolves once.
        assert all(r.ok for r in results + second_wave)
        assert len({r.request_id for r in results + second_wave}) == 200
        assert worker.poll() is None  # the worker rode it out
        await client.close()
    finally:
        stop_process(worker)
        await transport.close()
        server.kill()


async def test_released_requests_go_back_to_the_queue_at_once(redis_prefix):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    requests = [client.request("positive", seed=s) for s in range(3)]
    for request in requests:
        await transport.submit(request)
    taken = await transport.fetch("positive", "stopping-worker", 10, 100)
    assert [d.request for d in taken] == requests
    await transport.release(taken)  # what a worker does with a batch taken while stopping
    summary = await transport.redis.xpending(transport.request_stream("positive"), "workers")
    assert summary["pending"] == 0
    again = await transport.fetch("positive", "other-worker", 10, 100)
    assert [d.request for d in again] == requests
    await transport.close()


async def test_the_backlog_splits_into_pending_and_waiting_and_dead_letters_are_counted(
    redis_prefix,
):
    """What a status page reads (the operator console): requests a worker holds, requests
    nobody has taken, and when and how many entries were dead-lettered."""
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    try:
        client = WorkerClient(transport, settings)
        for seed in range(5):
            await transport.submit(client.request("positive", seed))
        assert await transport.queue_backlog("positive") == (0, 5)
        taken = await transport.fetch("positive", "status-page-test", 2, 100)
        assert len(taken) == 2
        assert await transport.queue_backlog("positive") == (2, 3)
        assert await transport.queue_depth("positive") == 5
        assert await transport.dead_letter_count() == 0
        before = time.time()
        await transport.redis.xadd(transport.request_stream("positive"), {"request": "{no"})
        await transport.fetch("positive", "status-page-test", 10, 100)  # screens it out
        [letter] = await transport.dead_letters()
        assert await transport.dead_letter_count() == 1
        assert before - 1 <= letter.at <= time.time() + 1 and "not JSON" in letter.reason
    finally:
        await transport.close()
