"""`moodmoji bench worker`: what batching buys, measured on this machine.

1. Throughput: emojis/s (generator forward plus PNG encoding, 128 px) against the number
   of requests per forward pass; batch size 1 is the unbatched baseline.
2. End to end: a client offers a fixed load (requests/s, one emoji each) through Redis to
   `moodmoji worker` processes and times submit to result; unbatched workers
   (`--max-batch 1`) next to batched ones with 1 and 2 processes.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from moodmoji.benchmarks import write_section
from moodmoji.errors import MoodmojiError
from worker.settings import WorkerSettings

LABEL = "positive"
SIZE = 128


def _bench_checkpoint(args: argparse.Namespace, settings: WorkerSettings, scratch: Path):
    """(checkpoint path, what it is): the shipped model, a given one, or a fresh ngf=64 one."""
    if args.checkpoint:
        if not args.checkpoint.is_file():
            raise MoodmojiError(f"no checkpoint at {args.checkpoint}")
        return args.checkpoint, f"`{args.checkpoint}`"
    shipped = settings.models_dir / f"{LABEL}.pt"
    if shipped.is_file():
        return shipped, f"shipped `models/{LABEL}.pt`"
    import gan

    # No shipped model yet: a 1-epoch ngf=64 generator has the real width, so the same speed.
    data = gan.make_procedural_dataset(scratch / "data", per_label=64, seed=0)
    config = gan.make_config("stable", model="proposed", label=LABEL, epochs=1, eval_every=0)
    path = gan.train(config, data_dir=data, out_dir=scratch / "run", device="cpu", progress=False)
    return path, "a 1-epoch Proposed generator at the default width (ngf=64); no models/ yet"


def _rate(step, batch: int, seconds: float) -> float:
    """Emojis/s of `step()`, which makes `batch` of them, run for about `seconds`."""
    step()  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += batch
    return done / (time.perf_counter() - started)


def _throughput(samplers: dict, batch_sizes: list[int], png_level: int, seconds: float = 2.0):
    """{name: [(batch, forward-only emojis/s, full-path emojis/s)]} per batch size.

    With several samplers each batch size is measured for all of them in turn, three
    rounds, and the median kept: a machine that gets busier halfway then slows them all
    alike instead of whichever came second.
    """
    from worker.service import encode_pngs

    rounds = 3 if len(samplers) > 1 else 1
    rows = {name: [] for name in samplers}
    for batch in batch_sizes:
        jobs = [(seed, 1) for seed in range(batch)]
        measured = {name: ([], []) for name in samplers}
        for _ in range(rounds):
            for name, sampler in samplers.items():

                def full(sampler=sampler, jobs=jobs):
                    per_request = sampler.sample_batch(jobs, SIZE)
                    encode_pngs([images[0] for images in per_request], png_level)

                forward, with_png = measured[name]
                forward.append(_rate(lambda s=sampler, j=jobs: s.sample_tensor(j), batch, seconds))
                with_png.append(_rate(full, batch, seconds))
        for name, (forward, with_png) in measured.items():
            rows[name].append((batch, statistics.median(forward), statistics.median(with_png)))
    return rows


def _spawn_workers(settings, registry, count: int, max_batch: int, prefix: str, threads: int):
    env = {
        **os.environ,
        "MOODMOJI_REDIS_URL": settings.redis_url,
        "MOODMOJI_QUEUE_PREFIX": prefix,
        "MOODMOJI_DEVICE": "cpu",
        "OMP_NUM_THREADS": str(threads),
        "MOODMOJI_WORKER_TORCH_THREADS": str(threads),
    }
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moodmoji.cli",
                "worker",
                "--registry",
                str(registry),
                "--labels",
                LABEL,
                "--max-batch",
                str(max_batch),
                "--worker-id",
                f"bench-{i}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]


@contextlib.contextmanager
def worker_processes(settings, registry, count: int, max_batch: int, prefix: str, threads: int):
    """`count` worker processes for the block; stopped (killed if they hang) after it."""
    processes = _spawn_workers(settings, registry, count, max_batch, prefix, threads)
    try:
        yield processes
    finally:
        stop_processes(processes)


def stop_processes(processes: list) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_for_workers(transport, count: int, timeout_s: float) -> None:
    """Until `count` workers send heartbeats on `transport`'s queue."""
    give_up = time.monotonic() + timeout_s
    while len(await transport.heartbeats()) < count:
        if time.monotonic() > give_up:
            raise MoodmojiError(
                f"{count} bench workers did not start within {timeout_s:g} s; is Redis up?"
            )
        await asyncio.sleep(0.2)


async def delete_queue_keys(transport, prefix: str) -> None:
    """Every Redis key of one bench run's queue prefix."""
    keys = [key async for key in transport.redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await transport.redis.delete(*keys)


async def _offered_load(settings, prefix: str, workers: int, rate: float, seconds: float):
    """Latencies (s) of `rate` requests/s for `seconds`, and the mean batch size seen."""
    from worker.client import WorkerClient
    from worker.redis_transport import RedisStreamsTransport

    settings = settings.model_copy(update={"queue_prefix": prefix, "queue_max_length": 100_000})
    transport = RedisStreamsTransport(settings)
    try:
        await wait_for_workers(transport, workers, 120)
        async with WorkerClient(transport, settings) as client:
            await client.generate(LABEL, seed=0, size=SIZE)  # warm every path once

            async def timed(seed: int):
                started = time.perf_counter()
                result = await client.generate(LABEL, seed=seed, size=SIZE, timeout=60)
                return time.perf_counter() - started, result

            tasks, begin = [], time.perf_counter()
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(timed(i + 1)))
            outcomes = await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - begin
        failed = [r for _, r in outcomes if not r.ok]
        if failed:
            raise MoodmojiError(f"{len(failed)} bench requests failed: {failed[0].error_message}")
        latencies = sorted(latency for latency, _ in outcomes)
        batch = statistics.mean(r.timings.batch_size for _, r in outcomes)
        return latencies, batch, len(outcomes) / elapsed
    finally:
        await delete_queue_keys(transport, prefix)
        await transport.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_worker_bench(args: argparse.Namespace, settings: WorkerSettings) -> int:
    import torch

    from gan import EmojiSampler
    from worker.registry import ModelRegistry

    # Other work on the machine shows in every figure; the report says how busy it was.
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-worker-"))
    try:
        checkpoint, described = _bench_checkpoint(args, settings, scratch)
        samplers = {"bench": EmojiSampler.from_checkpoint(checkpoint, device="cpu")}
        if args.baseline:
            if not args.baseline.is_file():
                raise MoodmojiError(f"no baseline checkpoint at {args.baseline}")
            samplers["baseline"] = EmojiSampler.from_checkpoint(args.baseline, device="cpu")
        torch.set_num_threads(args.threads)
        print(f"throughput on {described} ({args.threads} torch thread(s))")
        measured = _throughput(samplers, args.batch_sizes, settings.worker_png_level)
        throughput, baseline = measured["bench"], measured.get("baseline")
        for batch, forward, full in throughput:
            print(f"  batch {batch:3d}: forward {forward:7.1f} emojis/s, with PNG {full:7.1f}")
        for batch, forward, full in baseline or []:
            print(f"  baseline {batch:3d}: forward {forward:7.1f} emojis/s, with PNG {full:7.1f}")

        registry = ModelRegistry(scratch / "registry")
        registry.publish("bench", {LABEL: checkpoint}, activate=True)
        runs = [("unbatched (max batch 1)", 1, 1)]
        runs += [(f"batched (max batch {settings.worker_max_batch})", n, None) for n in (1, 2)]
        latency_rows = []
        for name, workers, max_batch in runs:
            prefix = f"moodmoji-bench-{uuid.uuid4().hex[:8]}"
            with worker_processes(
                settings,
                scratch / "registry",
                workers,
                max_batch or settings.worker_max_batch,
                prefix,
                args.threads,
            ):
                latencies, batch, achieved = asyncio.run(
                    _offered_load(settings, prefix, workers, args.rate, args.seconds)
                )
            row = (
                name,
                workers,
                achieved,
                _percentile(latencies, 0.5),
                _percentile(latencies, 0.99),
                latencies[-1],
                batch,
            )
            latency_rows.append(row)
            print(
                f"  {name}, {workers} worker(s): {achieved:.1f} req/s, "
                f"p50 {row[3] * 1000:.0f} ms, p99 {row[4] * 1000:.0f} ms, mean batch {batch:.1f}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    body = _report(described, throughput, latency_rows, args)
    if baseline:
        body += "\n\n" + _baseline_report(throughput, baseline, args.baseline)
    body += (
        f"\n\nLoad average (1 min) before / after the run: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )
    if not args.no_write:
        command = f"moodmoji bench worker --rate {args.rate:g} --seconds {args.seconds:g}"
        if args.checkpoint:
            command += f" --checkpoint {args.checkpoint}"
        if args.baseline:
            command += f" --baseline {args.baseline}"
        print(f"wrote {write_section('worker', body, command)}")
    return 0


def _report(described, throughput, latency_rows, args) -> str:
    _, forward_1, full_1 = throughput[0]
    lines = [
        f"Generator: {described}; {SIZE} px emojis, one per request, CPU only, "
        f"{args.threads} torch thread(s) per process.",
        "",
        "Throughput against requests per forward pass. *Forward*: the generator alone.",
        f"*Full*: forward, upscale 64 to {SIZE} px and PNG encoding, everything a worker does",
        "per emoji. Batch size 1 is the unbatched, one-request-per-forward baseline.",
        "",
        "| batch size | forward emojis/s | vs unbatched | full emojis/s | vs unbatched |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {b} | {forward:.1f} | {forward / forward_1:.1f}x | {full:.1f} | {full / full_1:.1f}x |"
        for b, forward, full in throughput
    ]
    best_forward = max(row[1] for row in throughput) / forward_1
    best_full = max(row[2] for row in throughput) / full_1
    lines += [
        "",
        f"Best batched throughput: {best_forward:.1f}x the unbatched baseline for the forward "
        f"pass, {best_full:.1f}x for the full path (target: at least 10x). Upscaling and PNG "
        "encoding cost the same per emoji at any batch size, so they cap the full-path gain.",
        "",
        f"End to end through Redis at an offered {args.rate:g} requests/s for {args.seconds:g} s "
        "(submit to result in the client):",
        "",
        "| workers | processes | achieved req/s | p50 ms | p99 ms | max ms | mean batch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {n} | {achieved:.1f} | {p50 * 1000:.0f} | {p99 * 1000:.0f} | "
        f"{worst * 1000:.0f} | {batch:.1f} |"
        for name, n, achieved, p50, p99, worst, batch in latency_rows
    ]
    lines += ["", "Target: p99 under 250 ms at 50 requests/s."]
    return "\n".join(lines)


def _baseline_report(throughput, baseline, baseline_path) -> str:
    lines = [
        f"Against `{baseline_path}`, measured in the same run (each batch size for both",
        "generators in turn, three rounds, medians):",
        "",
        "| batch size | forward emojis/s | baseline | ratio | full emojis/s | baseline | ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {b} | {fwd:.1f} | {base_fwd:.1f} | {fwd / base_fwd:.2f} | {full:.1f} | "
        f"{base_full:.1f} | {full / base_full:.2f} |"
        for (b, fwd, full), (_, base_fwd, base_full) in zip(throughput, baseline, strict=True)
    ]
    return "\n".join(lines)
