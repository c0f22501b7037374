"""Faults of the queue (issue 16): each test builds the fault for real and shows it holds.

Nothing stuck, nothing lost: a Redis that misreports its backlog after an AOF restart,
poison entries, replies nobody can read, Redis gone for good, a pending list whose
head hides idle entries, answers that outlive their readers. Real Redis throughout
(a server of the test's own where it is restarted), real tiny GANs.
"""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import asyncio
import json
import time

import pytest
import redis as sync_redis
from worker_helpers import (
    REDIS_URL,
    queue_settings,
    redis_prefix,
    running,
    samplers,
    tiny_models,
)

from moodmoji.errors import MoodmojiError
from worker import (
    ErrorCode,
    GenerateResult,
    QueueUnavailable,
    RedisStreamsTransport,
    WorkerBusy,
    WorkerClient,
)
from worker.localredis import LocalRedis
from worker.service import SamplingService

pytestmark = pytest.mark.redis


async def _answers(transport, requests, timeout: float) -> list[GenerateResult]:
    """The stored answers to requests already queued, waiting up to `timeout` for all.

    Not `client.submit`, which would queue each request again: these tests are about
    what happens to the entries already in the stream."""
    ids = [r.request_id for r in requests]
    give_up = time.monotonic() + timeout
    while True:
        stored = await transport.stored_results(ids)
        if len(stored) == len(ids):
            return [stored[i] for i in ids]
        if time.monotonic() > give_up:
            raise AssertionError(f"{len(ids) - len(stored)} of {len(ids)} never answered")
        await asyncio.sleep(0.05)


def _lag(url: str, stream: str) -> int:
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    try:
        [group] = client.xinfo_groups(stream)
        return group["lag"]
    finally:
        client.close()


# --- 1. a backlog Redis misreports after an AOF restart -------------------------------


async def test_a_stale_lag_after_an_aof_restart_refuses_nothing(tmp_path, samplers):
    server = LocalRedis(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        settings = queue_settings("aof", redis_url=server.url, queue_max_length=5)
        transport = RedisStreamsTransport(settings)
        service = SamplingService(transport, settings, samplers=samplers)
        async with running(service), WorkerClient(transport, settings) as client:
            for seed in range(10):
                assert (await client.generate("positive", seed=seed, size=16)).ok
            server.rewrite_aof()  # the rewrite records entries-read as it is now...
            for seed in range(10, 20):  # ...and these reads are not recorded with it
                assert (await client.generate("positive", seed=seed, size=16)).ok
        await transport.close()
        server.shutdown()
        server.start()

        stream = transport.request_stream("positive")
        if server.version() < (7, 4):
            # The fault, as Redis 7.0/7.2 have it: 10 "waiting" with nothing waiting,
            # for good; trusted, every request past the limit of 5 was refused forever.
            assert _lag(server.url, stream) >= settings.queue_max_length
        transport = RedisStreamsTransport(settings)
        assert await transport.queue_depth("positive") == 0
        service = SamplingService(transport, settings, samplers=samplers)
        async with running(service), WorkerClient(transport, settings) as client:
            results = await asyncio.gather(
                *(client.generate("positive", seed=s, size=16) for s in range(4))
            )
        assert all(r.ok for r in results)
        # Backpressure still counts what really waits.
        for seed in range(5):
            await transport.submit(client.request("positive", seed=seed))
        assert await transport.queue_depth("positive") == 5
        with pytest.raises(WorkerBusy, match="busy, try again"):
            await WorkerClient(transport, settings).generate("positive", seed=99)
        await transport.close()
    finally:
        server.kill()


# --- 2. poison entries -------------------------------------------------------------------


async def test_poison_entries_are_dead_lettered_and_cost_nobody_beside_them(redis_prefix, samplers):
    settings = queue_settings(redis_prefix, worker_max_batch=32, queue_max_length=100)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    raw = sync_redis.Redis.from_url(REDIS_URL)  # bytes in, bytes out: what a hostile writer sends
    stream = transport.request_stream("positive")
    request = client.request("positive", seed=1).model_dump(mode="json")
    poison = {
        "not UTF-8": b'{"v": 1, "label": "positive", "seed": 1, "reply_to": "\xff\xfe"}',
        "nested too deeply": b"[" * 10_000,
        "100,000 deep": b"[" * 100_000,
        "NaN deadline": json.dumps({**request, "request_id": "nan", "deadline": float("nan")}),
        "8 MB user id": json.dumps(
            {**request, "request_id": "big", "origin": {"user_id": "9" * 8_000_000}}
        ),
    }
    for payload in poison.values():
        raw.xadd(stream, {"request": payload})
    requests = [client.request("positive", seed=s, size=16) for s in range(10)]
    for each in requests:  # read in the same batch as the poison
        await transport.submit(each)
    started = time.monotonic()
    async with running(SamplingService(transport, settings, samplers=samplers)):
        results = await _answers(transport, requests, 30)
        took = time.monotonic() - started
    assert all(r.ok for r in results), [r.error_message for r in results]
    assert took < 15  # at once, not after reclaims
    reasons = [letter.reason for letter in await transport.dead_letters()]
    assert len(reasons) == len(poison)
    assert any("not UTF-8" in r for r in reasons)
    assert any("nested too deeply" in r for r in reasons)
    assert any("100000 bytes; at most" in r for r in reasons)
    assert any("deadline: Input should be a finite number" in r for r in reasons)
    assert any("bytes; at most 16384" in r for r in reasons if "8000" in r)
    assert (await transport.redis.xpending(stream, settings.queue_group))["pending"] == 0
    raw.close()
    await client.close()
    await transport.close()


async def test_poison_that_kills_workers_is_dead_lettered_at_the_delivery_limit(
    redis_prefix, samplers
):
    settings = queue_settings(redis_prefix, queue_claim_idle_ms=100, queue_max_deliveries=2)
    transport = RedisStreamsTransport(settings)
    stream, group = transport.request_stream("positive"), settings.queue_group
    raw = sync_redis.Redis.from_url(REDIS_URL)
    raw.xgroup_create(stream, group, id="0", mkstream=True)
    entry_id = raw.xadd(stream, {"request": b"\xc3\x28 not a request"})
    raw.xreadgroup(group, "dead-1", {stream: ">"})  # two workers took it and died on it
    raw.xclaim(stream, group, "dead-2", 0, [entry_id])
    await asyncio.sleep(0.15)
    async with running(SamplingService(transport, settings, samplers=samplers)):
        give_up = time.monotonic() + 10
        while not await transport.dead_letters() and time.monotonic() < give_up:
            await asyncio.sleep(0.05)
    [letter] = await transport.dead_letters()
    assert letter.delivery_count == 3 and "delivered 3 times" in letter.reason
    assert (await transport.redis.xpending(stream, group))["pending"] == 0
    raw.close()
    await transport.close()


# --- 3. replies nobody can read ----------------------------------------------------------


async def test_an_unreadable_reply_fails_its_request_and_the_reader_moves_on(redis_prefix):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    newer, fine = client.request("positive", seed=1), client.request("positive", seed=2)
    waiting = [asyncio.create_task(client.submit(r, timeout=10)) for r in (newer, fine)]
    await asyncio.sleep(0.1)
    raw = sync_redis.Redis.from_url(REDIS_URL)
    replies = transport.reply_stream(client.reply_to)
    raw.xadd(replies, {"result": b"\xff\xfe not UTF-8"})
    # A newer worker's answer during a rolling upgrade, and an old worker's inf timing.
    raw.xadd(replies, {"result": json.dumps({"v": 2, "request_id": newer.request_id})})
    raw.xadd(replies, {"result": '{"v": 1, "request_id": "x", "timings": {"queued_ms": null}}'})
    answer = GenerateResult(request_id=fine.request_id, images=[b"png"])
    last = raw.xadd(replies, {"result": answer.to_json()}).decode()
    started = time.monotonic()
    failed, ok = await asyncio.gather(*waiting)
    assert time.monotonic() - started < 3
    assert failed.error_code == ErrorCode.UNREADABLE_REPLY
    assert "protocol version 2" in failed.error_message
    assert ok.ok and ok.images == [b"png"]
    assert client.position == last  # past every entry: nothing is read twice
    reads_before = client.stats.copy()
    await asyncio.sleep(0.6)  # the reader blocks for new entries instead of spinning
    assert client.stats == reads_before and client.stats["unreadable"] == 3
    raw.close()
    await client.close()
    await transport.close()


# --- 4. Redis gone for good --------------------------------------------------------------


async def test_with_redis_gone_submit_is_refused_with_one_clear_error(tmp_path, samplers):
    server = LocalRedis(tmp_path / "redis")
    server.start()
    settings = queue_settings(
        "gone", redis_url=server.url, queue_submit_wait_s=1.0, queue_reconnect_s=1.0
    )
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    server.kill()
    started = time.monotonic()
    with pytest.raises(QueueUnavailable, match=r"the queue is unreachable .*try again in 1 s"):
        await client.generate("positive", seed=1)
    assert time.monotonic() - started < 5  # refused after the wait, not held for good
    assert issubclass(QueueUnavailable, WorkerBusy) and issubclass(QueueUnavailable, MoodmojiError)
    server.start()
    async with running(SamplingService(transport, settings, samplers=samplers)):
        assert (await client.generate("positive", seed=2, size=16)).ok
    await client.close()
    await transport.close()
    server.kill()


# --- 9. reclaiming ----------------------------------------------------------------------


async def test_idle_entries_behind_fresh_ones_at_the_head_are_reclaimed(redis_prefix, samplers):
    settings = queue_settings(redis_prefix, queue_claim_idle_ms=300, queue_max_length=10_000)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    await client.start()
    stream, group = transport.request_stream("positive"), settings.queue_group
    head = [client.request("positive", seed=s) for s in range(400)]
    behind = [client.request("positive", seed=s, size=16) for s in range(400, 420)]
    for request in head + behind:
        await transport.submit(request)
    raw = sync_redis.Redis.from_url(REDIS_URL, decode_responses=True)
    raw.xgroup_create(stream, group, id="0")
    [[_, entries]] = raw.xreadgroup(group, "crashed", {stream: ">"}, count=420)
    head_ids = [entry_id for entry_id, _ in entries[:400]]
    stop = asyncio.Event()

    async def slow_but_alive() -> None:  # a live worker keeps the 400 at the head fresh
        while not stop.is_set():
            raw.xclaim(stream, group, "alive", 0, head_ids, justid=True)
            await asyncio.sleep(0.05)

    keeper = asyncio.create_task(slow_but_alive())
    await asyncio.sleep(0.5)  # the 20 behind them are idle now: their worker crashed
    try:
        async with running(SamplingService(transport, settings, samplers=samplers)):
            results = await _answers(transport, behind, 20)
    finally:
        stop.set()
        await keeper
    assert all(r.ok for r in results)
    raw.close()
    await client.close()
    await transport.close()


async def test_a_long_pending_list_is_reclaimed_batch_after_batch(redis_prefix):
    settings = queue_settings(redis_prefix, queue_claim_idle_ms=200, queue_max_length=10_000)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    stream, group = transport.request_stream("positive"), settings.queue_group
    requests = [client.request("positive", seed=s, size=16, timeout=120) for s in range(1500)]
    async with transport.redis.pipeline(transaction=False) as pipe:
        for request in requests:
            pipe.xadd(stream, {"request": request.to_json()})
        await pipe.execute()
    raw = sync_redis.Redis.from_url(REDIS_URL)
    raw.xgroup_create(stream, group, id="0")
    raw.xreadgroup(group, "crashed", {stream: ">"}, count=2000)  # then it died
    raw.close()
    await asyncio.sleep(0.3)
    # A worker's fetches, as fast as it can serve them: each takes over a full batch.
    # Before, a reclaim ran at most once a second, so 32 entries a second per worker
    # (these 1,500 took 52 s to serve; 50,000 would take 26 minutes).
    reclaimed = []
    for _ in range(1500 // 32 + 2):
        reclaimed += await transport.fetch("positive", "survivor", 32, 10)
    assert len({d.request.request_id for d in reclaimed}) == 1500
    assert {d.delivery_count for d in reclaimed} == {2}
    await transport.close()


# --- 10. answers that outlive their readers ----------------------------------------------


async def test_answers_live_as_long_as_someone_may_read_them(redis_prefix, samplers):
    settings = queue_settings(redis_prefix, queue_result_ttl_s=300, queue_result_grace_s=5)
    transport = RedisStreamsTransport(settings)
    async with (
        running(SamplingService(transport, settings, samplers=samplers)),
        WorkerClient(transport, settings) as client,
    ):
        results = [
            await client.generate("positive", seed=s, size=16, timeout=10) for s in range(30)
        ]
        await asyncio.sleep(1.3)  # the reader forgets what it read about once a second
        replies = transport.reply_stream(client.reply_to)
        left_on_stream = await transport.redis.xlen(replies)
        stream_ttl = await transport.redis.ttl(replies)
        key_ttl = await transport.redis.ttl(transport.result_key(results[-1].request_id))
    assert all(r.ok for r in results)
    assert left_on_stream <= 1  # read answers are dropped; the newest is the read position
    assert 0 < stream_ttl <= 300  # an abandoned reply stream expires
    assert 0 < key_ttl <= 10 + 5  # the deadline plus the grace, not the hour it was
    await transport.close()


async def test_two_answers_to_one_request_in_one_read_count_as_a_duplicate(redis_prefix):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings)
    request = client.request("positive", seed=1)
    answer = GenerateResult(request_id=request.request_id, images=[b"png"]).to_json()
    replies = transport.reply_stream(client.reply_to)
    await client.start()
    waiting = asyncio.create_task(client.submit(request, timeout=10))
    await asyncio.sleep(0.1)
    async with transport.redis.pipeline(transaction=True) as pipe:  # both land in one read
        pipe.xadd(replies, {"result": answer})
        pipe.xadd(replies, {"result": answer})
        await pipe.execute()
    assert (await waiting).ok
    await asyncio.sleep(0.1)
    assert client.stats["duplicate"] == 1 and client.stats["foreign"] == 0
    await client.close()
    await transport.close()
