"""The fast worker path (issue 19): no idle batching wait, batched answers, rejects that ride
in the next pass, reduced precision within a stated tolerance, the GPU path, the ladder."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import asyncio
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from worker_helpers import (
    assert_images,
    queue_settings,
    redis_prefix,
    running,
    samplers,
    tiny_models,
    wait_for_workers,
)

from gan import EmojiSampler
from gan.data import tensor_to_images
from gan.models import cat_latents
from worker import GenerateRequest, GenerateResult, RedisStreamsTransport, WorkerClient
from worker.ladder import ladder_table, measure_ladder
from worker.service import ArrivalRate, SamplingService, available_cpus

SHIPPED = Path(__file__).resolve().parent.parent / "models"


def seen_on_white(images: torch.Tensor) -> np.ndarray:
    """RGBA samples as people see them, composited on white, 0..255 (the colour of a
    transparent pixel means nothing, so raw RGB differences there do not count)."""
    x = np.stack([np.asarray(image) for image in tensor_to_images(images)]).astype(float)
    alpha = x[..., 3:] / 255
    return np.concatenate([x[..., :3] * alpha + 255 * (1 - alpha), x[..., 3:]], axis=-1)


def shipped(label: str = "positive") -> Path:
    path = SHIPPED / f"{label}.pt"
    if not path.is_file():
        pytest.skip("no shipped model")
    return path


def test_a_request_gets_the_same_samples_in_whatever_passes_it_rides():
    # The shipped model's own gate rejects about a fifth of its samples.
    sampler = EmojiSampler.from_checkpoint(shipped(), device="cpu")
    carried = 0
    others = iter(range(100, 10_000))
    for seed in range(8):
        alone = sampler.sample_tensor([(seed, 3)])[0]
        # As the worker runs it: the request's job shares passes with jobs that come and
        # go (a crowd, then small passes where every job draws a spare), and rides on
        # into later passes while the gate rejects its samples.
        job = sampler.job(seed, 3)
        passes = 0
        while not sampler.finished(job):
            crowd = (20, 0, 3)[passes % 3]
            company = [sampler.job(next(others), 1 + i % 2) for i in range(crowd)]
            sampler.step([*company, job])
            passes += 1
        carried += passes > 1
        # The same samples; a pass's batch size moves fp32 convolutions by ~1e-6 at most.
        assert (job.images() - alone).abs().max() < 1e-4
        passed = sampler.gate.passes(alone).tolist()
        assert passed == sorted(passed, reverse=True)  # the samples that passed come first
    assert carried, "the gate rejected nothing: this test would not test carrying"


def test_bf16_stays_within_a_few_levels_of_fp32_as_people_see_it():
    exact = EmojiSampler.from_checkpoint(shipped(), "cpu")
    fast = EmojiSampler.from_checkpoint(shipped(), "cpu", precision="bf16")
    assert fast.precision == torch.bfloat16
    latent = cat_latents([exact.generator.sample_latent(32, torch.Generator().manual_seed(7))])
    a, b = exact.draw(latent), fast.draw(latent)
    difference = np.abs(seen_on_white(a) - seen_on_white(b))
    # Measured on 64 samples of each shipped model: mean 0.17-0.18, 99th percentile 2-3.
    assert difference.mean() < 0.5
    assert np.percentile(difference, 99) <= 4
    assert np.array_equal(exact.gate.passes(a), fast.gate.passes(b))


def test_precision_auto_is_bf16_only_where_the_hardware_has_it():
    from gan.sample import resolve_precision
    from moodmoji.errors import MoodmojiError

    cpu = torch.device("cpu")
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("reads the CPU's flags from /proc/cpuinfo")
    # Told from the kernel's flags, not torch's: AMX or AVX512-BF16 mean bf16.
    native = {"amx_bf16", "avx512_bf16"} & set(cpuinfo.read_text().split())
    expected = torch.bfloat16 if native else torch.float32
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("fp32", cpu) == torch.float32
    with pytest.raises(MoodmojiError, match="unknown precision 'int3'"):
        resolve_precision("int3", cpu)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("compile", [False, True])
def test_the_gpu_path_draws_what_the_cpu_draws(compile):
    cpu = EmojiSampler.from_checkpoint(shipped(), "cpu")
    gpu = EmojiSampler.from_checkpoint(shipped(), "cuda", precision="auto", compile=compile)
    latent = cat_latents([cpu.generator.sample_latent(24, torch.Generator().manual_seed(3))])
    on_gpu = gpu.draw(latent)
    assert on_gpu.device.type == "cpu" and on_gpu.is_pinned() and on_gpu.shape[0] == 24
    difference = np.abs(seen_on_white(cpu.draw(latent)) - seen_on_white(on_gpu))
    assert difference.mean() < 0.5 and np.percentile(difference, 99) <= 4
    requests = [(1, 2), (2, 1), (3, 3)]
    for x, y in zip(cpu.sample_tensor(requests), gpu.sample_tensor(requests), strict=True):
        assert x.shape == y.shape


def test_arrival_rate_says_when_another_request_is_due():
    rate = ArrivalRate()
    now = 1000.0
    assert rate.per_second(now) == 0  # nothing seen: a lone request never waits
    for i in range(11):
        rate.add(now - 0.5 + i * 0.05)  # 20 requests/s
    assert rate.per_second(now) == pytest.approx(20, rel=0.01)
    assert rate.per_second(now + 5) == 0  # a burst long ago says nothing about now


@pytest.mark.redis
async def test_a_lone_request_is_not_held_for_the_batch_wait(redis_prefix, samplers):
    # A wait this long would show in every answer if the service waited on a lone request.
    settings = queue_settings(redis_prefix, worker_batch_wait_ms=3000)
    transport = RedisStreamsTransport(settings)
    service = SamplingService(transport, settings, samplers=samplers, worker_id="w-lone")
    async with running(service), WorkerClient(transport, settings) as client:
        for seed in range(3):
            started = time.monotonic()
            result = await client.generate("positive", seed=seed, size=64)
            assert time.monotonic() - started < 1.5
            assert result.timings.queued_ms < 1000
        beats = await wait_for_workers(transport, ["w-lone"])
    # The heartbeat says how the worker samples, for operators comparing workers.
    beat = beats["w-lone"]
    assert beat["device"] == "cpu" and beat["max_batch"] == settings.worker_max_batch
    assert beat["precision"] in ("float32", "bfloat16") and beat["encode_threads"] >= 1
    await transport.close()


@pytest.mark.redis
async def test_a_batch_of_sizes_is_answered_in_one_pass_each_at_its_own_size(
    redis_prefix, samplers
):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    async with WorkerClient(transport, settings) as client:
        # Queued before the worker starts, so its first read takes them as one batch.
        sizes = [32, 64, 128, 128]
        waits = [
            asyncio.create_task(client.generate("positive", seed=i, count=2, size=size))
            for i, size in enumerate(sizes)
        ]
        while await transport.queue_depth("positive") < len(sizes):
            await asyncio.sleep(0.01)
        service = SamplingService(transport, settings, samplers=samplers, worker_id="w-sizes")
        async with running(service):
            results = await asyncio.gather(*waits)
    for result, size in zip(results, sizes, strict=True):
        assert_images(result, 2, size)
        assert result.timings.batch_size == len(sizes)
    # What each request got is what its seed draws alone, at its size.
    alone = samplers["positive"].sample_batch([(2, 2)], 128)[0]
    served = [Image.open(io.BytesIO(png)) for png in results[2].images]
    for x, y in zip(served, alone, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    await transport.close()


@pytest.mark.redis
async def test_complete_many_answers_a_batch_and_the_first_answer_still_wins(redis_prefix):
    settings = queue_settings(redis_prefix)
    transport = RedisStreamsTransport(settings)
    try:
        requests = [GenerateRequest(label="positive", seed=i, reply_to="bot") for i in range(3)]
        for request in requests:
            await transport.submit(request)
        deliveries = await transport.fetch("positive", "w", 10, 100)
        assert len(deliveries) == 3

        def answer(delivery, text):
            return delivery, GenerateResult(request_id=delivery.request.request_id, images=[text])

        await transport.complete_many([answer(d, b"first") for d in deliveries])
        await transport.complete_many([answer(d, b"second") for d in deliveries])
        stored = await transport.stored_results([r.request_id for r in requests])
        assert {r.images[0] for r in stored.values()} == {b"first"}
        replies = await transport.read_results("bot", "0", 0)
        assert len(replies) == 6 and {r.images[0] for _, r in replies} == {b"first"}
        pending = await transport.redis.xpending(transport.request_stream("positive"), "workers")
        assert pending["pending"] == 0

        # One round trip a batch: no SCRIPT EXISTS before the pipeline, and a Redis that
        # lost its scripts (restarted, flushed) still gets every answer.
        async def script_exists_calls() -> int:
            stats = await transport.redis.info("commandstats")
            return stats.get("cmdstat_script|exists", {}).get("calls", 0)

        await transport.submit(GenerateRequest(label="positive", seed=9, reply_to="bot"))
        [late] = await transport.fetch("positive", "w", 10, 100)
        await transport.redis.script_flush()
        before = await script_exists_calls()
        await transport.complete_many([answer(late, b"after a flush")])
        assert await script_exists_calls() == before
        stored = await transport.stored_results([late.request.request_id])
        assert stored[late.request.request_id].images == [b"after a flush"]
    finally:
        await transport.delete_queue()
        await transport.close()


def test_available_cpus_counts_what_this_process_may_use():
    assert 1 <= available_cpus() <= os.cpu_count()


@pytest.mark.redis
@pytest.mark.parametrize("encode_threads", [0, 2])
def test_the_ladder_measures_every_stage_and_names_the_slowest(
    redis_prefix, tiny_models, encode_threads
):
    settings = queue_settings(redis_prefix, worker_encode_threads=encode_threads)
    sampler = EmojiSampler.from_checkpoint(tiny_models["positive"], "cpu")
    ladder = measure_ladder(
        sampler, settings, batch=4, threads=2, size=64, seconds=0.05, cores=2, sampling_threads=2
    )
    rates = (
        *(ladder.forward, ladder.copy, ladder.gate, ladder.host, ladder.sampling),
        *(ladder.read, ladder.answer),
    )
    assert all(rate > 0 for rate in rates)
    stage, ceiling = ladder.ceiling
    assert ceiling == min(ladder.stages.values()) and ladder.stages[stage] == ceiling
    loop_time = 1 / ladder.read + 1 / ladder.answer  # the event loop reads and answers
    assert ladder.stages["reading and answering"] == pytest.approx(1 / loop_time)
    assert ladder.sampling_threads == 2
    if encode_threads == 0:
        # On a CPU each sampling thread encodes its pass: one stage, measured as it runs.
        assert ladder.sampling_encoding > 0
        assert ladder.stages["sampling and encoding"] == ladder.sampling_encoding
        cpu_time = 2 / ladder.sampling_encoding + loop_time
    else:
        assert ladder.sampling_encoding is None
        assert ladder.stages["sampling"] == ladder.sampling
        cpu_time = 1 / ladder.gate + 1 / ladder.encode_one_thread + loop_time
    assert ladder.stages["all 2 cores"] == pytest.approx(2 / cpu_time)
    table = ladder_table(ladder)
    assert f"set by {stage}" in table
    assert table.count("\n| ") >= (10 if encode_threads == 0 else 9)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 1, 4), (7, 5, 3), (128, 128, 4), (3, 64, 4)])
def test_the_png_writer_is_lossless_for_rgb_and_rgba(shape, level):
    from gan.png import encode_png

    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(pixels, level)))
    assert decoded.mode == ("RGBA" if shape[2] == 4 else "RGB")
    assert np.array_equal(np.asarray(decoded), pixels)


def test_png_levels_outside_isa_l_are_refused_in_the_settings(monkeypatch):
    from pydantic import ValidationError

    from worker.settings import WorkerSettings

    monkeypatch.setenv("MOODMOJI_WORKER_PNG_LEVEL", "6")  # a zlib level, not ISA-L's
    with pytest.raises(ValidationError, match="worker_png_level"):
        WorkerSettings()
    monkeypatch.setenv("MOODMOJI_WORKER_PNG_LEVEL", "3")
    assert WorkerSettings().worker_png_level == 3


def test_the_png_writer_refuses_what_it_cannot_write():
    from gan.png import encode_png

    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="3 or 4"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


@pytest.mark.slow
def test_a_compiled_generator_pads_batches_to_buckets_and_draws_the_same(tiny_models):
    eager = EmojiSampler.from_checkpoint(tiny_models["positive"], "cpu")
    compiled = EmojiSampler.from_checkpoint(tiny_models["positive"], "cpu", compile=True)
    for n in (3, 5):  # padded to 4 and 8 inside, cut back to n
        latent = cat_latents([eager.generator.sample_latent(n, torch.Generator().manual_seed(n))])
        a, b = eager.draw(latent), compiled.draw(latent)
        assert b.shape == a.shape and (a - b).abs().max() < 1e-4


async def test_a_read_that_must_not_wait_still_takes_what_is_queued_in_process():
    from worker import InProcessTransport

    transport = InProcessTransport()
    assert await transport.fetch("positive", "w", 8, 0) == []
    for seed in range(3):
        await transport.submit(GenerateRequest(label="positive", seed=seed, reply_to="bot"))
    taken = await transport.fetch("positive", "w", 8, 0)
    assert [d.request.seed for d in taken] == [0, 1, 2]


class _WatchedSampler:
    """The real sampler, whose passes each take at least 50 ms (a sleep, which frees the
    GIL as a forward pass does) and are recorded, so overlapping passes show."""

    def __init__(self, sampler):
        self.sampler, self.version, self.label = sampler, sampler.version, sampler.label
        self.device = sampler.device
        self.at_once, self.most_at_once, self.passes = 0, 0, 0
        self._lock = __import__("threading").Lock()

    def job(self, seed, count):
        return self.sampler.job(seed, count)

    def finished(self, job):
        return self.sampler.finished(job)

    def step(self, jobs):
        with self._lock:
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            time.sleep(0.05)
            self.sampler.step(jobs)
        finally:
            with self._lock:
                self.at_once -= 1
                self.passes += 1


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("encode_threads", [0, 2])
async def test_passes_sample_side_by_side_on_every_sampling_thread(
    samplers, threads, encode_threads, monkeypatch
):
    import threading

    import gan
    from worker import InProcessTransport

    settings = queue_settings(
        "inproc",
        worker_labels=["positive"],
        worker_max_batch=4,
        worker_sampling_threads=threads,
        worker_encode_threads=encode_threads,
    )
    encoded_on = set()  # the threads that encoded PNGs
    encode = gan.encode_emojis

    def recorded(*args, **kwargs):
        encoded_on.add(threading.current_thread().name.split("_")[0])
        return encode(*args, **kwargs)

    monkeypatch.setattr(gan, "encode_emojis", recorded)
    watched = _WatchedSampler(samplers["positive"])
    transport = InProcessTransport()
    client = WorkerClient(transport, settings, per_user_cap=False)
    requests = [client.request("positive", seed=s, size=32) for s in range(24)]
    waits = [asyncio.create_task(client.submit(r)) for r in requests]
    while await transport.queue_depth("positive") < len(requests):
        await asyncio.sleep(0.01)
    service = SamplingService(transport, settings, samplers={"positive": watched})
    async with running(service):
        results = await asyncio.gather(*waits)
    assert service.sampling_threads == threads
    assert watched.most_at_once == threads  # never more passes at once than threads
    # On a CPU by default each sampling thread encodes its own pass; a set count, a pool.
    assert service.encode_inline == (encode_threads == 0)
    assert service.encode_threads == (encode_threads or threads)
    assert encoded_on == ({"sample"} if encode_threads == 0 else {"png"})
    assert watched.passes >= len(requests) // 4
    # What each request got does not depend on the passes it shared or the thread.
    for seed in (0, 13, 23):
        alone = samplers["positive"].sample_batch([(seed, 1)], 32)[0]
        served = Image.open(io.BytesIO(results[seed].images[0]))
        assert np.array_equal(np.asarray(served), np.asarray(alone[0]))
    await client.close()


def test_sampling_threads_default_to_the_cores_on_a_cpu_and_one_on_a_gpu():
    from moodmoji.errors import MoodmojiError
    from worker.service import resolve_sampling_threads
    from worker.settings import WorkerSettings

    auto = WorkerSettings(worker_sampling_threads=0)
    assert resolve_sampling_threads(auto, on_gpu=False) == available_cpus()
    assert resolve_sampling_threads(auto, on_gpu=True) == 1
    assert resolve_sampling_threads(WorkerSettings(worker_sampling_threads=3), on_gpu=True) == 3
    compiled = WorkerSettings(worker_sampling_threads=2, worker_compile=True)
    assert resolve_sampling_threads(compiled, on_gpu=False) == 2
    with pytest.raises(MoodmojiError, match="CUDA graphs"):
        resolve_sampling_threads(compiled, on_gpu=True)
