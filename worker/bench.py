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
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
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


def _throughput(samplers: dict, batch_sizes: list[int], png_level: int, seconds: float = 2.0):
    """{name: [(batch, forward-only emojis/s, full-path emojis/s)]} per batch size.

    With several samplers each batch size is measured for all of them in turn, three
    rounds, and the median kept: a machine that gets busier halfway then slows them all
    alike instead of whichever came second.
    """
    from worker.ladder import emojis_per_second
    from worker.service import encode_groups

    rounds = 3 if len(samplers) > 1 else 1
    rows = {name: [] for name in samplers}
    for batch in batch_sizes:
        jobs = [(seed, 1) for seed in range(batch)]
        measured = {name: ([], []) for name in samplers}
        for _ in range(rounds):
            for name, sampler in samplers.items():

                def full(sampler=sampler, jobs=jobs):
                    groups = [(images, SIZE) for images in sampler.sample_tensor(jobs)]
                    encode_groups(groups, png_level)

                forward, with_png = measured[name]
                forward.append(
                    emojis_per_second(lambda s=sampler, j=jobs: s.sample_tensor(j), batch, seconds)
                )
                with_png.append(emojis_per_second(full, batch, seconds))
        for name, (forward, with_png) in measured.items():
            rows[name].append((batch, statistics.median(forward), statistics.median(with_png)))
    return rows


def _spawn_workers(
    settings,
    registry,
    count: int,
    max_batch: int,
    prefix: str,
    threads: int,
    source=None,
    device: str = "cpu",
):
    """`source`: run the workers from another checkout (PYTHONPATH), to compare code."""
    env = {
        **os.environ,
        **({"PYTHONPATH": str(Path(source).resolve())} if source else {}),
        "MOODMOJI_REDIS_URL": settings.redis_url,
        "MOODMOJI_QUEUE_PREFIX": prefix,
        "MOODMOJI_DEVICE": device,
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
            # `python -m` puts the working folder first on sys.path, before PYTHONPATH.
            cwd=Path(source).resolve() if source else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]


@contextlib.contextmanager
def worker_processes(*spawn_args, **spawn_kwargs):
    """Worker processes (`_spawn_workers`'s arguments) for the block; stopped (killed if
    they hang) after it."""
    processes = _spawn_workers(*spawn_args, **spawn_kwargs)
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


@dataclass
class EndToEnd:
    """What one worker process did for one bench client, submit to result in the client."""

    lone: list[float]  # latencies (s) of requests sent one at a time
    lone_timings: dict[str, float]  # mean ms of each step of a lone request
    load: list[float]  # latencies (s) at the offered rate
    load_rate: float  # answered req/s
    load_batch: float  # mean batch size at that rate
    lost: int  # requests of the load run never answered
    drain_rate: float  # emojis/s while emptying a backlog
    ceiling: float = 0.0  # the ladder's ceiling, measured at the start of this run's round


async def _end_to_end(settings, prefix: str, args) -> EndToEnd:
    """Lone requests, an offered load, then a backlog, against the one worker on `prefix`."""
    from worker.client import RequestTimedOut, WorkerClient
    from worker.redis_transport import RedisStreamsTransport

    settings = settings.model_copy(update={"queue_prefix": prefix, "queue_max_length": 100_000})
    transport = RedisStreamsTransport(settings)
    # This process holds torch, the bench's samplers and the ladder's leftovers, about
    # 250,000 objects, and the load run keeps thousands of tasks and answers: its full
    # collections (one or two a run, 56-180 ms each, measured) stopped the client, and the
    # latencies counted that as the worker's. So no collections while it times, as
    # `timeit` does (a worker's own heap had none at 200 requests/s for 60 s, measured).
    gc.collect()
    gc.disable()
    try:
        await wait_for_workers(transport, 1, 120)
        async with WorkerClient(transport, settings, per_user_cap=False) as client:
            for seed in range(5):  # warm every path once
                await client.generate(LABEL, seed=seed, size=SIZE)

            lone, steps = [], []
            for seed in range(args.lone):
                started = time.perf_counter()
                result = await client.generate(LABEL, seed=10_000 + seed, size=SIZE)
                lone.append(time.perf_counter() - started)
                t = result.timings
                steps.append((t.queued_ms, t.sample_ms, t.encode_ms, lone[-1] * 1000))
            queued, sample, encode, total = (
                statistics.mean(column) for column in zip(*steps, strict=True)
            )
            lone_timings = {
                "queued": queued,
                "sample": sample,
                "encode": encode,
                "answer": total - queued - sample - encode,
                "total": total,
            }

            async def timed(seed: int):
                started = time.perf_counter()
                try:
                    result = await client.generate(LABEL, seed=seed, size=SIZE, timeout=30)
                except RequestTimedOut:
                    return None, None
                return time.perf_counter() - started, result

            tasks, begin = [], time.perf_counter()
            for i in range(int(args.rate * args.seconds)):
                await asyncio.sleep(max(0.0, begin + i / args.rate - time.perf_counter()))
                tasks.append(asyncio.create_task(timed(20_000 + i)))
            outcomes = await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - begin
            answered = [(latency, r) for latency, r in outcomes if r is not None and r.ok]
            load = sorted(latency for latency, _ in answered)
            batch = statistics.mean(r.timings.batch_size for _, r in answered) if answered else 0

            drain_rate = await _drain(transport, args.drain)
        return EndToEnd(
            sorted(lone),
            lone_timings,
            load,
            len(answered) / elapsed,
            batch,
            len(outcomes) - len(answered),
            drain_rate,
        )
    finally:
        gc.enable()
        await transport.delete_queue()
        await transport.close()


async def _drain(transport, count: int, timeout_s: float = 120.0) -> float:
    """Emojis/s of draining a backlog: `count` requests queued at once; from the moment
    the last is queued, the requests still unanswered then, over the time until the queue
    holds none (every one answered and acknowledged).

    Queued straight into the transport, not through a client's admission, whose backlog
    count per request (up to the whole backlog, in Redis) would load the very Redis the
    worker is measured against. The clock starts once the backlog is queued, so the
    submitting (about 0.1 core of the two here, in this process) is not timed; the answers
    are read and checked only after the last, so decoding them is not timed either."""
    from worker.protocol import GenerateRequest

    reply_to = f"bench-drain-{uuid.uuid4().hex[:8]}"
    requests = [
        GenerateRequest(label=LABEL, seed=100_000 + i, size=SIZE, reply_to=reply_to)
        for i in range(count)
    ]
    await asyncio.gather(*(transport.submit(request) for request in requests))
    begin = time.perf_counter()
    backlog = left = await transport.queue_depth(LABEL)
    # Ten looks a second: each counts the backlog in Redis (a scan of it), which at 50
    # a second cost Redis 0.15 cores of the two; the figure errs low by up to 0.1 s.
    while left > 0 and time.perf_counter() - begin < timeout_s:
        await asyncio.sleep(0.1)
        left = await transport.queue_depth(LABEL)
    elapsed = time.perf_counter() - begin
    answered, position = set(), "0"
    while read := await transport.read_results(reply_to, position, 0):
        position = read[-1][0]
        answered |= {r.request_id for _, r in read if r is not None and r.ok}
    if len(answered) < count:
        raise MoodmojiError(f"the backlog run answered {len(answered)} of {count} requests")
    if backlog < count / 2:
        raise MoodmojiError(
            f"the worker kept up with the submitting ({backlog} of {count} left once all were "
            "queued): give --drain more requests"
        )
    return backlog / elapsed


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_worker_bench(args: argparse.Namespace, settings: WorkerSettings) -> int:
    import torch

    from gan import EmojiSampler
    from worker.ladder import ladder_table, measure_ladder
    from worker.registry import ModelRegistry
    from worker.service import available_cpus

    # Other work on the machine shows in every figure; the report says how busy it was.
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-worker-"))
    settings = settings.model_copy(update={"device": args.device})
    try:
        checkpoint, described = _bench_checkpoint(args, settings, scratch)

        def load(path):
            return EmojiSampler.from_checkpoint(
                path,
                args.device,
                precision=settings.worker_precision,
                compile=settings.worker_compile,
            )

        samplers = {"bench": load(checkpoint)}
        if args.baseline:
            if not args.baseline.is_file():
                raise MoodmojiError(f"no baseline checkpoint at {args.baseline}")
            samplers["baseline"] = load(args.baseline)
        torch.set_num_threads(args.threads)
        sampler = samplers["bench"]
        precision = str(sampler.precision).removeprefix("torch.")
        print(
            f"throughput on {described} ({sampler.device}, {precision}, "
            f"{args.threads} torch thread(s))"
        )
        measured = _throughput(samplers, args.batch_sizes, settings.worker_png_level)
        throughput, baseline = measured["bench"], measured.get("baseline")
        for batch, forward, full in throughput:
            print(f"  batch {batch:3d}: forward {forward:7.1f} emojis/s, with PNG {full:7.1f}")
        for batch, forward, full in baseline or []:
            print(f"  baseline {batch:3d}: forward {forward:7.1f} emojis/s, with PNG {full:7.1f}")

        threads = settings.worker_encode_threads or available_cpus()
        ladder = measure_ladder(sampler, settings, settings.worker_max_batch, threads, SIZE)
        print(ladder_table(ladder))
        png = _png_table(sampler)
        print(png)

        registry = ModelRegistry(scratch / "registry")
        registry.publish("bench", {LABEL: checkpoint}, activate=True)
        sides = {"this checkout": None}
        if args.compare_source:
            sides = {f"`{args.compare_source}`": args.compare_source, **sides}
        runs = {name: [] for name in sides}
        for round_ in range(args.rounds):
            # This machine's speed drifts by a fifth or more over the minutes of a run (the
            # old worker's backlog rate fell 185 -> 146 emojis/s over three rounds): each
            # round's backlog is held to a ceiling measured just before it, the same way as
            # the first (shorter stages scattered more: 487-753 against 596-782 at 0.5 s).
            if round_:
                ladder_now = measure_ladder(
                    sampler, settings, settings.worker_max_batch, threads, SIZE
                )
            else:
                ladder_now = ladder
            _, ceiling = ladder_now.ceiling
            for name, source in sides.items():  # interleaved, so a busier machine hits both
                prefix = f"moodmoji-bench-{uuid.uuid4().hex[:8]}"
                with worker_processes(
                    settings,
                    scratch / "registry",
                    1,
                    settings.worker_max_batch,
                    prefix,
                    args.threads,
                    source=source,
                    device=args.device,
                ):
                    run = asyncio.run(_end_to_end(settings, prefix, args))
                run = replace(run, ceiling=ceiling)
                runs[name].append(run)
                print(f"  round {round_ + 1}, {name}: {_run_line(run)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    body = _report(described, sampler, throughput, args)
    body += "\n\n" + _ladder_report(ladder, settings)
    body += "\n\n" + png
    body += "\n\n" + _end_to_end_report(runs, args, settings)
    if baseline:
        body += "\n\n" + _baseline_report(throughput, baseline, args.baseline)
    body += (
        f"\n\nLoad average (1 min) before / after the run: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )
    if not args.no_write:
        command = (
            f"moodmoji bench worker --rate {args.rate:g} --seconds {args.seconds:g} "
            f"--lone {args.lone} --drain {args.drain} --rounds {args.rounds}"
        )
        if args.device != "cpu":
            command += f" --device {args.device}"
        for option in ("checkpoint", "baseline", "compare_source"):
            if getattr(args, option):
                command += f" --{option.replace('_', '-')} {getattr(args, option)}"
        section = "worker" if args.device == "cpu" else f"worker-{sampler.device.type}"
        print(f"wrote {write_section(section, body, command)}")
    return 0


def _run_line(run: EndToEnd) -> str:
    return (
        f"lone p50 {_percentile(run.lone, 0.5) * 1000:.1f} ms; at {run.load_rate:.0f} req/s "
        f"p50 {_percentile(run.load, 0.5) * 1000:.0f} ms "
        f"p99 {_percentile(run.load, 0.99) * 1000:.0f} ms, {run.lost} lost; "
        f"backlog {run.drain_rate:.0f} emojis/s "
        f"({run.drain_rate / run.ceiling:.0%} of the round's ceiling, {run.ceiling:.0f})"
    )


def _report(described, sampler, throughput, args) -> str:
    _, forward_1, full_1 = throughput[0]
    precision = str(sampler.precision).removeprefix("torch.")
    lines = [
        f"Generator: {described}; {SIZE} px emojis, one per request, on {sampler.device} in "
        f"{precision}, {args.threads} torch thread(s) per process.",
        "",
        "Throughput against requests per forward pass, one thread. *Forward*: the generator",
        f"with its shape gate. *Full*: that plus resizing 64 to {SIZE} px and PNG encoding on",
        "the same thread. Batch size 1 is the unbatched baseline.",
        "",
        "| batch size | forward emojis/s | vs unbatched | full emojis/s | vs unbatched |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {b} | {forward:.1f} | {forward / forward_1:.1f}x | {full:.1f} | {full / full_1:.1f}x |"
        for b, forward, full in throughput
    ]
    return "\n".join(lines)


def _png_table(sampler, seconds: float = 1.0) -> str:
    """Time against size of the PNG writers and settings worth considering, on 32 served
    emojis: Pillow (adaptive row filters) with zlib's default and run-length strategies,
    the Up filter with zlib's run-length deflate (what the worker used before ISA-L), and
    `gan.png` (the Up filter, ISA-L's deflate), which the worker uses."""
    import io
    import zlib

    import numpy as np

    from gan.data import tensor_to_images
    from gan.png import encode_png
    from worker.ladder import emojis_per_second

    [images] = sampler.sample_tensor([(0, 32)])
    pictures = tensor_to_images(images, SIZE)
    pixels = [np.asarray(picture) for picture in pictures]

    def pillow(strategy):
        def encode(level):
            sizes = []
            for picture in pictures:
                buffer = io.BytesIO()
                picture.save(buffer, "PNG", compress_level=level, compress_type=strategy)
                sizes.append(buffer.tell())
            return sizes

        return encode

    def zlib_run_length(rows, level):
        compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        return compressor.compress(rows) + compressor.flush()

    writers = {  # name: (encode(level) -> sizes, levels, whose levels)
        "Pillow, default strategy": (pillow(zlib.Z_DEFAULT_STRATEGY), (1, 6, 9), "zlib"),
        "Pillow, run-length": (pillow(zlib.Z_RLE), (1, 6), "zlib"),
        "Up filter, zlib run-length": (
            lambda level: [len(encode_png(p, level, zlib_run_length)) for p in pixels],
            (1,),
            "zlib",
        ),
        "gan.png: Up filter, ISA-L": (
            lambda level: [len(encode_png(p, level)) for p in pixels],
            (0, 1, 2, 3),
            "ISA-L",
        ),
    }
    rows = []
    for name, (encode, levels, whose) in writers.items():
        for level in levels:
            rate = emojis_per_second(
                lambda encode=encode, level=level: encode(level), len(pictures), seconds
            )
            rows.append(
                (name, f"{whose} {level}", 1000 / rate, statistics.mean(encode(level)) / 1024)
            )
    lines = [
        f"PNG writers on 32 served {SIZE} px RGBA emojis (resized already), one thread:",
        "",
        "| writer | level | ms per emoji | KiB per emoji |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {lv} | {ms:.2f} | {kib:.1f} |" for n, lv, ms, kib in rows]
    return "\n".join(lines)


def _ladder_report(ladder, settings) -> str:
    from worker.ladder import ladder_table

    return (
        f"The ladder at the worker's batch size ({settings.worker_max_batch}), each stage on "
        "its own (worker/ladder.py):\n\n" + ladder_table(ladder)
    )


def _end_to_end_report(runs: dict, args, settings) -> str:
    ceilings = " / ".join(f"{run.ceiling:.0f}" for run in runs["this checkout"])
    lines = [
        f"End to end through Redis with one `moodmoji worker` process (max batch "
        f"{settings.worker_max_batch}), submit to result in one bench client on the same "
        f"cores: {args.lone} lone requests one after another; {args.rate:g} requests/s "
        f"offered for {args.seconds:g} s; then a backlog of {args.drain} requests queued at "
        f"once (straight into Redis, past the client's per-request backlog count); from the "
        f"moment the last is queued, those still unanswered over the time until every one is "
        f"answered and acknowledged (the answers are read after that). {args.rounds} "
        f"round(s), the sides interleaved; medians of the rounds. The ceiling is measured "
        f"again before each round (the ladder above is the first round's), as this "
        f"machine's speed drifts over minutes: {ceilings} emojis/s; *of ceiling* is each "
        f"round's backlog over its own round's ceiling.",
        "",
        "| worker | lone p50 ms | lone p99 ms | load req/s | load p50 ms | load p99 ms | "
        "max ms | mean batch | lost | backlog emojis/s | of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rounds in runs.items():

        def median(f, rounds=rounds):
            return statistics.median(f(run) for run in rounds)

        drain = median(lambda r: r.drain_rate)
        of_ceiling = median(lambda r: r.drain_rate / r.ceiling)
        lines.append(
            f"| {name} | {median(lambda r: _percentile(r.lone, 0.5)) * 1000:.1f} | "
            f"{median(lambda r: _percentile(r.lone, 0.99)) * 1000:.1f} | "
            f"{median(lambda r: r.load_rate):.1f} | "
            f"{median(lambda r: _percentile(r.load, 0.5)) * 1000:.0f} | "
            f"{median(lambda r: _percentile(r.load, 0.99)) * 1000:.0f} | "
            f"{median(lambda r: r.load[-1] if r.load else 0) * 1000:.0f} | "
            f"{median(lambda r: r.load_batch):.1f} | {sum(r.lost for r in rounds)} | "
            f"{drain:.0f} | {of_ceiling:.0%} |"
        )
    timings = runs["this checkout"][-1].lone_timings
    lines += [
        "",
        "One lone request, mean ms (this checkout, last round): "
        + ", ".join(f"{step} {ms:.1f}" for step, ms in timings.items())
        + ". *queued*: submit to the start of sampling (Redis, the worker's read); "
        "*answer*: the answer stored, sent and read by the client.",
    ]
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
