"""The worker's speed ladder: each stage of serving an emoji alone, and its ceiling.

    forward        the generator on latents already on the device, synchronised
    + copy         latents from the CPU to the device and images back to host memory
    + gate         per-request seeded latents and the shape gate, whose rejects ride in the
                   next pass (`EmojiSampler.step`): what one sampling thread does
    sampling       that on `sampling_threads` threads at once, as the worker runs them
    + encode       on a CPU, where each sampling thread encodes its own pass: sampling and
                   encoding on `sampling_threads` threads at once, the worker's CPU job
    encode         resize and PNG-encode on `threads` threads at once (`encode_groups`)
    read           a batch of queued requests taken from Redis and checked for stored
                   answers (`fetch`, `stored_results`), as the event loop does per batch
    answer         answers stored in Redis, one pipeline per batch (`complete_many`)

Each figure is emojis/s of that stage on its own resources, so the slowest of the
sampling, encoding and answering stages bounds a worker whose stages overlap (sampling
threads, encoding pool and event loop run side by side); and those stages share the
cores, so their CPU time per emoji, added up, bounds it too. The lower bound is the
ceiling the bench holds a real worker to.
`moodmoji bench worker` prints this ladder and measures the real worker against it.
"""

import asyncio
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from gan.models import cat_latents
from worker.service import encode_groups, split_evenly


@dataclass(frozen=True)
class Ladder:
    batch: int
    threads: int  # encoding threads
    sampling_threads: int
    cores: int  # the cores the worker may use
    on_cpu: bool  # the generator runs on the CPU (its forward costs CPU time)
    forward: float  # emojis/s
    copy: float
    gate: float
    host: float  # a sampling thread's own CPU work per emoji: latents and the gate
    sampling: float  # `gate` on `sampling_threads` threads at once
    # `sampling` with each pass's PNGs encoded on its thread, as a CPU worker runs it
    # (None: the worker encodes on a pool of its own, as on a GPU)
    sampling_encoding: float | None
    encode: float
    encode_one_thread: float
    read: float | None  # None: no Redis measured
    answer: float | None

    @property
    def stages(self) -> dict[str, float]:
        """The stages that run side by side in a worker, and their ceilings; and the cores,
        which those stages share: every core busy with their CPU time per emoji."""
        if self.sampling_encoding:
            # One job per sampling thread; its threads' CPU time per emoji, measured with
            # all of them running at once (what they cost each other counts).
            stages = {"sampling and encoding": self.sampling_encoding}
            seconds = self.sampling_threads / self.sampling_encoding
        else:
            stages = {"sampling": self.sampling, "encoding": self.encode}
            seconds = 1 / (self.gate if self.on_cpu else self.host) + 1 / self.encode_one_thread
        if self.read and self.answer:
            # The event loop reads and answers: one thread, so their times add up.
            stages["reading and answering"] = 1 / (1 / self.read + 1 / self.answer)
            seconds += 1 / self.read + 1 / self.answer
        stages[f"all {self.cores} cores"] = self.cores / seconds
        return stages

    @property
    def ceiling(self) -> tuple[str, float]:
        """(what sets it, emojis/s): the lowest of `stages`."""
        return min(self.stages.items(), key=lambda item: item[1])


def emojis_per_second(step, emojis: int, seconds: float) -> float:
    """Emojis/s of `step()`, which makes `emojis` of them, run for about `seconds` (at
    least three times): the median step, so a moment's noise on a shared machine does
    not move it."""
    step()  # warm up (and compile, where a compiled generator is used)
    times, begin = [], time.perf_counter()
    while time.perf_counter() - begin < seconds or len(times) < 3:
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return emojis / statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_sampling(
    sampler, batch: int, seconds: float, threads: int = 1
) -> tuple[float, float, float, float]:
    """(forward, + copy, + gate, + gate on `threads` threads at once) emojis/s of
    `sampler` at `batch` one-emoji requests."""
    generator, device = sampler.generator, sampler.device
    latent = cat_latents([generator.sample_latent(batch, torch.Generator().manual_seed(0))])
    on_device = latent.to(device)

    def forward():
        sampler.draw(on_device, to_host=False)
        _synchronize(device)

    forward_rate = emojis_per_second(forward, batch, seconds)
    copy_rate = emojis_per_second(lambda: sampler.draw(latent), batch, seconds)
    one_thread = _steady_rate(sampler, batch, seconds, 1)
    together = one_thread if threads == 1 else _steady_rate(sampler, batch, seconds, threads)
    return forward_rate, copy_rate, one_thread, together


def measure_host_side(sampler, batch: int, seconds: float) -> float:
    """Emojis/s of what the sampling thread does on the CPU besides the forward pass:
    seeded latents per request and the shape gate. On a GPU, where the forward costs
    next to nothing, this is the sampling thread's ceiling."""
    images = sampler.draw(cat_latents([sampler.generator.sample_latent(batch)]))

    def host():
        jobs = [sampler.job(seed, 1) for seed in range(batch)]
        cat_latents([sampler.generator.sample_latent(1, job.stream) for job in jobs])
        if sampler.gate:
            sampler.gate.passes(images)

    return emojis_per_second(host, batch, seconds)


def _steady_rate(sampler, batch: int, seconds: float, threads: int, encode=None) -> float:
    """Emojis/s finished by passes of `batch` one-emoji requests on `threads` threads at
    once, as the worker runs them: a request the gate sent back rides in its thread's
    next pass beside fresh ones. `encode`: (size, PNG level) to encode each pass's
    finished requests on its thread, as a CPU worker does."""

    def run(thread: int) -> tuple[int, float, float]:  # (finished, begin, end)
        seeds = iter(range(thread * 10**9, (thread + 1) * 10**9))
        pending, finished = [], 0
        sampler.step([sampler.job(next(seeds), 1) for _ in range(batch)])  # warm up
        begin = time.perf_counter()
        while time.perf_counter() - begin < seconds or finished < batch:
            pending += [sampler.job(next(seeds), 1) for _ in range(batch - len(pending))]
            sampler.step(pending)
            done = [job for job in pending if sampler.finished(job)]
            if encode:
                size, level = encode
                encode_groups([(job.images(), size) for job in done], level)
            finished += len(done)
            pending = [job for job in pending if not sampler.finished(job)]
        return finished, begin, time.perf_counter()

    with ThreadPoolExecutor(threads) as pool:
        runs = list(pool.map(run, range(threads)))
    finished = sum(count for count, _, _ in runs)
    return finished / (max(end for _, _, end in runs) - min(begin for _, begin, _ in runs))


def measure_encoding(images: torch.Tensor, size: int, level: int, threads: int, seconds: float):
    """Emojis/s of resizing and PNG-encoding `images` on `threads` threads at once."""
    groups = [(image[None], size) for image in images]
    with ThreadPoolExecutor(threads) as pool:

        def encode_all():
            chunks = split_evenly(groups, threads)
            list(pool.map(lambda chunk: encode_groups(chunk, level), chunks))

        return emojis_per_second(encode_all, len(groups), seconds)


async def measure_reading(settings, batch: int, seconds: float) -> float:
    """Requests/s taken from Redis in batches of `batch` and checked for stored answers,
    what the worker's loop does for each batch before it samples, on a scratch queue
    prefix that is deleted after. The same requests go round: each batch is handed back
    to the queue (`release`, untimed) to be read again."""
    from worker.protocol import GenerateRequest
    from worker.redis_transport import RedisStreamsTransport

    prefix = f"moodmoji-ladder-{uuid.uuid4().hex[:8]}"
    transport = RedisStreamsTransport(settings.model_copy(update={"queue_prefix": prefix}))
    try:
        for seed in range(batch):
            await transport.submit(GenerateRequest(label="positive", seed=seed, reply_to="ladder"))
        done, spent = 0, 0.0
        while spent < seconds:
            begin = time.perf_counter()
            taken = await transport.fetch("positive", "ladder", batch, 0)
            await transport.stored_results([d.request.request_id for d in taken])
            spent += time.perf_counter() - begin
            done += len(taken)
            await transport.release(taken)
        return done / spent
    finally:
        await transport.delete_queue()
        await transport.close()


async def measure_answering(settings, pngs: list[bytes], seconds: float) -> float:
    """Answers/s of `complete_many` into Redis, batches of len(pngs) one-PNG answers,
    on a scratch queue prefix that is deleted after."""
    from worker.protocol import GenerateRequest, GenerateResult
    from worker.redis_transport import RedisStreamsTransport
    from worker.transport import Delivery

    prefix = f"moodmoji-ladder-{uuid.uuid4().hex[:8]}"
    transport = RedisStreamsTransport(settings.model_copy(update={"queue_prefix": prefix}))
    try:
        done, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            answers = []
            for png in pngs:
                request = GenerateRequest(label="positive", seed=0, reply_to="ladder")
                delivery = Delivery("0-1", "positive", request, request.to_json())
                answers.append(
                    (delivery, GenerateResult(request_id=request.request_id, images=[png]))
                )
            await transport.complete_many(answers)
            done += len(answers)
        return done / (time.perf_counter() - begin)
    finally:
        await transport.delete_queue()
        await transport.close()


def measure_ladder(
    sampler,
    settings,
    batch: int,
    threads: int,
    size: int,
    seconds: float = 2.0,
    redis: bool = True,
    cores: int | None = None,
    sampling_threads: int | None = None,
) -> Ladder:
    """Every stage of `sampler` at `batch`; `cores`: those the worker may use (default:
    this process's, `available_cpus`); `sampling_threads`: the worker's (default: what
    `worker_sampling_threads` gives on the sampler's device). Encoding is measured in the
    passes where the worker does it there: on a CPU with `worker_encode_threads` 0."""
    from worker.service import available_cpus, resolve_sampling_threads

    on_cpu = sampler.device.type == "cpu"
    sampling_threads = sampling_threads or resolve_sampling_threads(settings, not on_cpu)
    forward, copy, gate, sampling = measure_sampling(sampler, batch, seconds, sampling_threads)
    host = measure_host_side(sampler, batch, seconds)
    [images] = sampler.sample_tensor([(0, batch)])
    level = settings.worker_png_level
    encode = measure_encoding(images, size, level, threads, seconds)
    encode_one = encode if threads == 1 else measure_encoding(images, size, level, 1, seconds)
    sampling_encoding = None
    if on_cpu and not settings.worker_encode_threads:
        sampling_encoding = _steady_rate(sampler, batch, seconds, sampling_threads, (size, level))
    read = answer = None
    if redis:
        pngs = [pngs[0] for pngs in encode_groups([(image[None], size) for image in images], level)]
        read = asyncio.run(measure_reading(settings, batch, seconds))
        answer = asyncio.run(measure_answering(settings, pngs, seconds))
    cores = cores or available_cpus()
    return Ladder(
        batch,
        threads,
        sampling_threads,
        cores,
        on_cpu,
        forward,
        copy,
        gate,
        host,
        sampling,
        sampling_encoding,
        encode,
        encode_one,
        read,
        answer,
    )


def ladder_table(ladder: Ladder) -> str:
    stage, ceiling = ladder.ceiling
    rows = [
        ("forward (generator alone, on the device)", ladder.forward),
        ("+ copy (latents in, images out)", ladder.copy),
        ("+ gate (seeded latents, shape gate): one sampling thread", ladder.gate),
        ("a sampling thread's CPU work alone (latents, gate): its limit on a GPU", ladder.host),
        (f"sampling: {ladder.sampling_threads} thread(s) at once", ladder.sampling),
        (f"encode: resize + PNG, {ladder.threads} thread(s)", ladder.encode),
        ("encode: resize + PNG, 1 thread", ladder.encode_one_thread),
    ]
    if ladder.sampling_encoding:
        name = f"+ encode in the pass: {ladder.sampling_threads} thread(s) at once"
        rows.insert(5, (name, ladder.sampling_encoding))
    if ladder.read:
        rows.append(("read: Redis, a fetch and a look for stored answers per batch", ladder.read))
    if ladder.answer:
        rows.append(("answer: Redis, one pipeline per batch", ladder.answer))
    lines = [
        f"| stage, batch {ladder.batch} | emojis/s | ms per emoji |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {rate:.0f} | {1000 / rate:.3f} |" for name, rate in rows]
    lines += [
        "",
        "Ceiling of one worker, the lowest of: "
        + ", ".join(f"{name} {rate:.0f}" for name, rate in ladder.stages.items())
        + f" emojis/s (the cores: every one busy with the CPU time per emoji above). "
        f"**{ceiling:.0f} emojis/s, set by {stage}.**",
    ]
    return "\n".join(lines)
