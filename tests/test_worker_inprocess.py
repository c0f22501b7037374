"""The sampling service on the in-process transport, with real tiny GANs."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import asyncio
import contextlib
import time

import pytest
from worker_helpers import (
    PoisonedSampler,
    assert_images,
    make_registry,
    queue_settings,
    running,
    samplers,
    tiny_models,
)

from worker import (
    ErrorCode,
    GenerateRequest,
    InProcessTransport,
    WorkerBusy,
    WorkerClient,
)
from worker.service import SamplingService


async def queued(client: WorkerClient, requests: list[GenerateRequest]) -> list[asyncio.Task]:
    """Submit requests as tasks and return once every one is in the queue."""
    labels = {r.label for r in requests}

    async def depth() -> int:
        return sum([await client.transport.queue_depth(label) for label in labels])

    target = await depth() + len(requests)
    tasks = [asyncio.create_task(client.submit(r)) for r in requests]
    while await depth() < target and not any(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    return tasks


async def test_requests_queued_together_are_sampled_in_one_batch_and_match_alone(samplers):
    settings = queue_settings("inproc", worker_labels=["positive", "negative"])
    transport = InProcessTransport()
    client = WorkerClient(transport, settings)
    requests = [client.request("positive", seed=s, count=2, size=64) for s in range(6)]
    requests.append(client.request("negative", seed=3, size=32))
    tasks = await queued(client, requests)
    async with running(SamplingService(transport, settings, samplers=samplers)) as service:
        results = await asyncio.gather(*tasks)
        alone = await client.generate("positive", seed=4, count=2, size=64)
    for request, result in zip(requests, results, strict=True):
        assert result.request_id == request.request_id
        assert_images(result, request.count, request.size)
    assert [r.timings.batch_size for r in results[:6]] == [6] * 6
    assert alone.timings.batch_size == 1
    assert alone.images == results[4].images  # same seed: same emojis, batched or not
    assert results[0].images != results[1].images
    assert service.requests_sampled == 8
    await client.close()


async def test_a_duplicate_request_id_is_answered_from_the_stored_result(samplers):
    settings = queue_settings("inproc")
    transport = InProcessTransport()
    async with (
        running(SamplingService(transport, settings, samplers=samplers)) as service,
        WorkerClient(transport, settings) as client,
    ):
        request = client.request("positive", seed=11, size=64)
        first = await client.submit(request)
        sampled = service.requests_sampled
        again = await client.submit(request)
    assert again.replayed and not first.replayed
    assert again.images == first.images
    assert service.requests_sampled == sampled == 1


async def test_a_poison_request_is_dead_lettered_while_its_batch_mates_are_served(samplers):
    settings = queue_settings("inproc")
    transport = InProcessTransport()
    client = WorkerClient(transport, settings)
    seeds = [1, 666, 2, 3]
    tasks = await queued(client, [client.request("positive", seed=s, size=32) for s in seeds])
    poisoned = {"positive": PoisonedSampler(samplers["positive"])}
    async with running(SamplingService(transport, settings, samplers=poisoned)):
        results = await asyncio.gather(*tasks)
    by_seed = dict(zip(seeds, results, strict=True))
    assert by_seed[666].error_code == ErrorCode.SAMPLING_FAILED
    assert "latent exploded" in by_seed[666].error_message
    for seed in (1, 2, 3):
        assert_images(by_seed[seed], 1, 32)
    [letter] = await transport.dead_letters()
    assert "latent exploded" in letter.reason
    assert GenerateRequest.model_validate_json(letter.payload).seed == 666
    await client.close()


async def test_expired_requests_are_answered_without_sampling(samplers):
    settings = queue_settings("inproc")
    transport = InProcessTransport()
    async with (
        running(SamplingService(transport, settings, samplers=samplers)) as service,
        WorkerClient(transport, settings) as client,
    ):
        request = client.request("positive", seed=1)
        request = request.model_copy(update={"deadline": time.time() - 1})
        result = await client.submit(request)
    assert result.error_code == ErrorCode.DEADLINE_EXCEEDED
    assert service.requests_sampled == 0


async def test_backpressure_refuses_past_the_queue_limit_and_the_per_user_cap():
    settings = queue_settings("inproc", queue_max_length=3, queue_max_in_flight_per_user=2)
    transport = InProcessTransport()  # no worker: everything stays queued
    client = WorkerClient(transport, settings)
    from worker import Origin

    alice = Origin(user_id="alice")
    waiting = await queued(
        client, [client.request("positive", seed=s, origin=alice) for s in range(2)]
    )
    with pytest.raises(WorkerBusy, match="already have 2"):
        await client.generate("positive", seed=9, origin=alice)
    waiting += await queued(client, [client.request("positive", seed=5)])
    with pytest.raises(WorkerBusy, match=r"busy, try again in \d+ s") as refused:
        await client.generate("positive", seed=6, origin=Origin(user_id="bob"))
    assert refused.value.retry_after_s >= 1
    assert await transport.queue_depth("positive") == 3
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    await client.close()


async def test_hot_reload_switches_versions_between_batches_without_dropping_requests(
    tmp_path,
    tiny_models,
):
    settings = queue_settings("inproc", registry_poll_s=0.05)
    registry = make_registry(tmp_path / "registry", tiny_models)
    transport = InProcessTransport()
    service = SamplingService(transport, settings, registry=registry)
    async with running(service), WorkerClient(transport, settings) as client:
        first = await client.generate("positive", seed=1, size=32)
        results = []
        stream = [
            asyncio.create_task(client.generate("positive", seed=s, size=32)) for s in range(40)
        ]
        await asyncio.sleep(0)
        registry.activate("v2")
        while service.model_version != "v2":
            results.append(await client.generate("positive", seed=100, size=32))
        results += await asyncio.gather(*stream)
        after = await client.generate("positive", seed=1, size=32)
    assert first.model_version != after.model_version
    assert after.model_version == service.samplers["positive"].version
    assert all(r.ok for r in results)
    assert first.images != after.images  # another generator draws other emojis
