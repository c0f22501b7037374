"""`moodmoji bench load`: many bot-side clients and worker processes on one local Redis.

N clients, each with its own connection pool and reply stream as N bot shard processes
would have, offer a fixed total request rate for a set time to M `moodmoji worker`
processes, and every request is followed to its end:

- *ok*: answered with an emoji; its latency (submit to result) counts in the percentiles;
- *error*: answered with an error code, or answered only after the client gave up;
- *refused*: turned away by backpressure (`WorkerBusy`) before it was queued;
- *lost*: neither: no answer on the reply stream and none stored. Must be 0.

Runs: *steady* (the load as offered), *failover* (the same, with worker 0 SIGKILLed a
third of the way in and started again `--restart-after` s later; what it held is
reclaimed after `MOODMOJI_QUEUE_CLAIM_IDLE_MS`), and *capacity* (one worker offered more
than it can serve: its answered requests/s is what one CPU worker does here).

Bounded: only a Redis on 127.0.0.1 is used; every run lasts `--seconds` plus at most the
claim timeout and `_ANSWER_GRACE_S` for the last answers; worker start-up is given
`_STARTUP_S`.
"""

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from moodmoji.benchmarks import write_section
from moodmoji.errors import MoodmojiError
from worker.bench import (
    LABEL,
    SIZE,
    _bench_checkpoint,
    _percentile,
    _spawn_workers,
    delete_queue_keys,
    wait_for_workers,
    worker_processes,
)
from worker.client import RequestTimedOut, WorkerBusy, WorkerClient
from worker.redis_transport import RedisStreamsTransport
from worker.settings import WorkerSettings

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_STARTUP_S = 120.0  # longest wait for workers to load their models and send a heartbeat
_ANSWER_GRACE_S = 30.0  # beyond the claim timeout, how long a client waits for an answer
_LIMITS = {"clients": (1, 16), "workers": (1, 8), "rate": (0.1, 2000.0), "seconds": (0.5, 600.0)}


@dataclass
class LoadPlan:
    clients: int
    workers: int
    rate: float  # requests/s offered by all clients together
    seconds: float
    restart_after: float = 2.0  # failover: seconds between the kill and the restart
    capacity_rate: float = 0.0  # 0: no capacity run
    threads: int = 1
    max_batch: int = 32


@dataclass
class RunReport:
    name: str
    clients: int
    workers: int
    offered_rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)  # ok answers, sorted
    errors: int = 0
    refused: int = 0
    lost: int = 0
    misrouted: int = 0  # answers found on another client's reply stream
    submitted: int = 0
    answered_rate: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def percentile_ms(self, q: float) -> float:
        return _percentile(self.latencies, q) * 1000 if self.latencies else float("nan")


def check_plan(plan: LoadPlan, settings: WorkerSettings) -> None:
    """One-line errors for a plan out of bounds or a Redis that is not on this machine."""
    for name, (low, high) in _LIMITS.items():
        value = getattr(plan, name)
        if not low <= value <= high:
            raise MoodmojiError(f"--{name} must be between {low:g} and {high:g}, not {value:g}")
    if not 0 <= plan.capacity_rate <= _LIMITS["rate"][1]:
        raise MoodmojiError(f"--capacity-rate must be between 0 and {_LIMITS['rate'][1]:g}")
    url = urlsplit(settings.redis_url)
    if url.scheme != "redis" or url.hostname not in _LOOPBACK_HOSTS:
        raise MoodmojiError(
            f"bench load only talks to a Redis on this machine (redis://127.0.0.1:...), "
            f"not {url.scheme}://{url.hostname}; set MOODMOJI_REDIS_URL"
        )


# --- one client ----------------------------------------------------------------------


async def _offer(
    index: int, settings: WorkerSettings, rate: float, seconds: float, begin: float
) -> tuple[list[tuple[str, float | None]], set[str], str]:
    """One client's share of the load: ([(outcome, latency)], its request ids, reply_to)."""
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings, reply_to=f"loadbench-{index}-{uuid.uuid4().hex[:6]}")
    timeout = settings.queue_claim_idle_ms / 1000 + _ANSWER_GRACE_S
    asked: set[str] = set()

    async def one(seed: int) -> tuple[str, float | None]:
        request = client.request(LABEL, seed=seed, size=SIZE, timeout=timeout)
        asked.add(request.request_id)
        started = time.perf_counter()
        try:
            result = await client.submit(request, timeout=timeout)
        except WorkerBusy:
            asked.discard(request.request_id)
            return "refused", None
        except RequestTimedOut:
            stored = await transport.fetch_result(request.request_id)
            return ("error" if stored is not None else "lost"), None
        return ("ok", time.perf_counter() - started) if result.ok else ("error", None)

    try:
        async with client:
            interval = 1 / rate
            tasks = []
            for i in range(max(1, round(rate * seconds))):
                await asyncio.sleep(max(0.0, begin + i * interval - time.perf_counter()))
                tasks.append(asyncio.create_task(one(index * 1_000_000 + i)))
            outcomes = await asyncio.gather(*tasks)
        return outcomes, asked, client.reply_to
    finally:
        await transport.close()


async def _misrouted(settings: WorkerSettings, asked_by_stream: dict[str, set[str]]) -> int:
    """Answers on a client's reply stream to requests that client never made."""
    transport = RedisStreamsTransport(settings)
    try:
        wrong = 0
        for reply_to, asked in asked_by_stream.items():
            for _position, result in await transport.read_results(reply_to, "0", 0):
                wrong += result.request_id not in asked
        return wrong
    finally:
        await transport.close()


# --- one run -------------------------------------------------------------------------


async def _wait_for_heartbeats(settings: WorkerSettings, count: int) -> None:
    transport = RedisStreamsTransport(settings)
    try:
        await wait_for_workers(transport, count, _STARTUP_S)
        async with WorkerClient(transport, settings) as client:
            await client.generate(LABEL, seed=0, size=SIZE, timeout=_STARTUP_S)  # warm the path
    finally:
        await transport.close()


async def _run(
    name: str,
    settings: WorkerSettings,
    clients: int,
    workers: int,
    rate: float,
    seconds: float,
    failover=None,
) -> RunReport:
    """Offer `rate` requests/s from `clients` clients; `failover(begin, events)` runs beside."""
    report = RunReport(name, clients, workers, rate, seconds)
    begin = time.perf_counter() + 0.1
    share = rate / clients
    loads = [
        _offer(i, settings, share, seconds, begin + i / rate)  # interleaved arrivals
        for i in range(clients)
    ]
    beside = [failover(begin, report.events)] if failover else []
    per_client = (await asyncio.gather(*loads, *beside))[:clients]
    elapsed = time.perf_counter() - begin
    asked_by_stream = {}
    for outcomes, asked, reply_to in per_client:
        asked_by_stream[reply_to] = asked
        report.submitted += len(outcomes)
        for outcome, latency in outcomes:
            if outcome == "ok":
                report.latencies.append(latency)
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
    report.latencies.sort()
    report.answered_rate = report.ok / elapsed
    report.misrouted = await _misrouted(settings, asked_by_stream)
    return report


def _worker_processes(settings, registry: Path, count: int, plan: LoadPlan):
    return worker_processes(
        settings, registry, count, plan.max_batch, settings.queue_prefix, plan.threads
    )


async def _delete_keys(settings: WorkerSettings) -> None:
    transport = RedisStreamsTransport(settings)
    try:
        await delete_queue_keys(transport, settings.queue_prefix)
    finally:
        await transport.close()


def _kill_and_restart(processes: list, settings, registry: Path, plan: LoadPlan):
    """The failover side task: SIGKILL worker 0 a third of the way in, start it again later."""

    async def failover(begin: float, events: list[str]) -> None:
        kill_at = plan.seconds / 3
        await asyncio.sleep(max(0.0, begin + kill_at - time.perf_counter()))
        processes[0].kill()
        await asyncio.to_thread(processes[0].wait)
        events.append(f"worker bench-0 SIGKILLed at {time.perf_counter() - begin:.1f} s")
        await asyncio.sleep(plan.restart_after)
        # Same consumer name, as a supervisor restarting the unit would give it.
        [restarted] = _spawn_workers(
            settings, registry, 1, plan.max_batch, settings.queue_prefix, plan.threads
        )
        processes.append(restarted)
        events.append(f"started again at {time.perf_counter() - begin:.1f} s")

    return failover


def measure(plan: LoadPlan, settings: WorkerSettings, checkpoint: Path) -> list[RunReport]:
    """Steady and failover runs (same workers and keys), then, if asked, a capacity run
    on one fresh worker; every key is deleted afterwards."""
    from worker.registry import ModelRegistry

    check_plan(plan, settings)
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-load-"))
    reports = []
    try:
        registry = scratch / "registry"
        ModelRegistry(registry).publish("bench", {LABEL: checkpoint}, activate=True)

        def fresh_settings() -> WorkerSettings:
            prefix = f"moodmoji-loadbench-{uuid.uuid4().hex[:8]}"
            return settings.model_copy(update={"queue_prefix": prefix})

        ours = fresh_settings()
        try:
            with _worker_processes(ours, registry, plan.workers, plan) as processes:
                asyncio.run(_wait_for_heartbeats(ours, plan.workers))
                for name, failover in (
                    ("steady", None),
                    ("failover", _kill_and_restart(processes, ours, registry, plan)),
                ):
                    report = asyncio.run(
                        _run(
                            name,
                            ours,
                            plan.clients,
                            plan.workers,
                            plan.rate,
                            plan.seconds,
                            failover,
                        )
                    )
                    reports.append(report)
        finally:
            asyncio.run(_delete_keys(ours))
        if plan.capacity_rate:
            ours = fresh_settings()
            try:
                with _worker_processes(ours, registry, 1, plan):
                    asyncio.run(_wait_for_heartbeats(ours, 1))
                    reports.append(
                        asyncio.run(
                            _run(
                                "capacity", ours, plan.clients, 1, plan.capacity_rate, plan.seconds
                            )
                        )
                    )
            finally:
                asyncio.run(_delete_keys(ours))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return reports


# --- command -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=2, help="bot-side clients (reply streams)")
    parser.add_argument("--workers", type=int, default=2, help="`moodmoji worker` processes")
    parser.add_argument("--rate", type=float, default=40.0, help="offered load, requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument(
        "--restart-after", type=float, default=2.0, help="failover: seconds from kill to restart"
    )
    parser.add_argument(
        "--capacity-rate",
        type=float,
        default=150.0,
        help="requests/s offered to one worker to find its capacity (0: skip that run)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--checkpoint", type=Path, help="generator to serve (default: models/)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")


def run_load_bench(args: argparse.Namespace, settings: WorkerSettings) -> int:
    plan = LoadPlan(
        clients=args.clients,
        workers=args.workers,
        rate=args.rate,
        seconds=args.seconds,
        restart_after=args.restart_after,
        capacity_rate=args.capacity_rate,
        threads=args.threads,
        max_batch=settings.worker_max_batch,
    )
    check_plan(plan, settings)
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-load-model-"))
    try:
        checkpoint, described = _bench_checkpoint(args, settings, scratch)
        reports = measure(plan, settings, checkpoint)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for report in reports:
        print(_summary_line(report))
    body = report_markdown(reports, plan, settings, described)
    body += (
        f"\n\nLoad average (1 min) before / after: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )
    if not args.no_write:
        command = (
            f"moodmoji bench load --clients {plan.clients} --workers {plan.workers} "
            f"--rate {plan.rate:g} --seconds {plan.seconds:g} "
            f"--capacity-rate {plan.capacity_rate:g}"
        )
        print(f"wrote {write_section('load', body, command)}")
    lost = sum(report.lost + report.misrouted for report in reports)
    if lost:
        print(f"LOST OR MISROUTED: {lost} requests")
        return 1
    return 0


def _summary_line(report: RunReport) -> str:
    return (
        f"{report.name}: {report.clients} clients, {report.workers} workers, offered "
        f"{report.offered_rate:g}/s, answered {report.answered_rate:.1f}/s, "
        f"p50 {report.percentile_ms(0.5):.0f} ms, p95 {report.percentile_ms(0.95):.0f} ms, "
        f"p99 {report.percentile_ms(0.99):.0f} ms, errors {report.errors}, "
        f"refused {report.refused}, lost {report.lost}, misrouted {report.misrouted}"
        + (f" ({'; '.join(report.events)})" if report.events else "")
    )


def report_markdown(
    reports: list[RunReport], plan: LoadPlan, settings: WorkerSettings, described: str
) -> str:
    lines = [
        f"{plan.clients} bot-side clients (one reply stream and connection pool each) and "
        f"`moodmoji worker` processes on this machine, one local Redis; generator: {described}; "
        f"{SIZE} px emojis, one per request, CPU, {plan.threads} torch thread(s) per worker, "
        f"max batch {plan.max_batch}, claim timeout {settings.queue_claim_idle_ms} ms, "
        f"queue limit {settings.queue_max_length}. Each run offers its rate for "
        f"{plan.seconds:g} s; latency is submit to result in the client; *answered req/s* "
        "is answers over the time from the first request to the last answer.",
        "",
        "| run | workers | offered req/s | requests | answered req/s | p50 ms | p95 ms | p99 ms "
        "| max ms | errors | refused | lost | misrouted |",
        "| --- |" + " ---: |" * 12,
    ]
    for r in reports:
        worst = r.latencies[-1] * 1000 if r.latencies else float("nan")
        lines.append(
            f"| {r.name} | {r.workers} | {r.offered_rate:g} | {r.submitted} | "
            f"{r.answered_rate:.1f} | {r.percentile_ms(0.5):.0f} | {r.percentile_ms(0.95):.0f} | "
            f"{r.percentile_ms(0.99):.0f} | {worst:.0f} | {r.errors} | {r.refused} | {r.lost} | "
            f"{r.misrouted} |"
        )
    lines += ["", "*steady*: the load as offered."]
    failover = next((r for r in reports if r.name == "failover"), None)
    if failover is not None:
        lines.append(
            f"*failover*: the same load; {', '.join(failover.events)}. Requests the killed "
            "worker held are reclaimed by the others after the claim timeout, which is "
            "what its max latency shows."
        )
    capacity = next((r for r in reports if r.name == "capacity"), None)
    if capacity is not None:
        lines.append(
            f"*capacity*: one worker offered more than it can serve; it answered "
            f"{capacity.answered_rate:.1f} requests/s (the rest waited or were refused by "
            "backpressure): the figure for one CPU worker process on this machine."
        )
    lines.append("*lost*: neither answered nor refused; must be 0.")
    return "\n".join(lines)
