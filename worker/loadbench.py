"""`moodmoji bench load`: many bot-side clients and worker processes on one local Redis,
under the faults a deployment meets.

N clients, each with its own connection pool and reply stream as N bot shard processes
would have, offer a fixed total request rate for a set time to M `moodmoji worker`
processes, and every request is followed to its end:

- *answered*: with an emoji; its latency (submit to result) counts in the percentiles;
- *error*: answered with an error code, or answered only after the client gave up;
- *refused*: turned away before it was queued: backpressure (`WorkerBusy`) or Redis
  unreachable for `MOODMOJI_QUEUE_SUBMIT_WAIT_S` (`QueueUnavailable`); *refused while
  up* counts those refused while Redis was serving: must be 0 in a fault run;
- *lost*: neither: no answer on the reply stream and none stored. Must be 0;
- *duplicated*: answers a client dropped because the request was answered already
  (resubmitted after a Redis restart, or finished by a worker that was stopped);
- *stuck*: requests still in the queue (pending or undelivered, counted as admission
  counts them) once every client is done. Must be 0. Beside it, the `lag` Redis itself
  reports for the group, which Redis 7.0/7.2 get wrong after an AOF restart;
- *recovered*: seconds from Redis serving again to the first answer after that.

Runs (`--faults`, in the order given, on the same workers):

- *steady*: the load as offered;
- *kill*: worker 0 SIGKILLed a third of the way in and started again `--restart-after` s
  later; what it held is reclaimed after `MOODMOJI_QUEUE_CLAIM_IDLE_MS`;
- *stop*: the last worker SIGSTOPped a third of the way in for `--stop-for` s, then
  SIGCONTed: its batch is reclaimed by the others meanwhile, and its late answers dropped;
- *redis*: Redis crashed (SIGKILL) a third of the way in, no persistence, started again
  `--redis-down` s later: the queue is empty, and clients resubmit what they wait for;
- *redis-aof*: the same with an append-only file (fsync every second, as deploy/ runs
  it), rewritten (BGREWRITEAOF) up to two seconds before the crash, as Redis does itself:
  the case whose stale `lag` refused every request before.

With a Redis fault the whole bench runs on a redis-server of its own (a free port, a
scratch folder); otherwise on `MOODMOJI_REDIS_URL`, which must be on this machine. A
*capacity* run (one fresh worker offered more than it can serve) follows if asked.

Bounded: every run lasts `--seconds` plus at most the claim timeout and
`_ANSWER_GRACE_S` for the last answers; worker start-up is given `_STARTUP_S`.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
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
    wait_for_workers,
    worker_processes,
)
from worker.client import RequestTimedOut, WorkerBusy, WorkerClient
from worker.errors import QueueUnavailable
from worker.localredis import LocalRedis
from worker.redis_transport import RedisStreamsTransport
from worker.settings import WorkerSettings

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_STARTUP_S = 120.0  # longest wait for workers to load their models and send a heartbeat
_ANSWER_GRACE_S = 30.0  # beyond the claim timeout, how long a client waits for an answer
_SETTLE_S = 60.0  # longest wait between runs for the queue to drain and workers to be back
_AOF_REWRITE_LEAD_S = 2.0  # redis-aof: the rewrite comes this long before the crash (at most)
_LIMITS = {"clients": (1, 16), "workers": (1, 8), "rate": (0.1, 2000.0), "seconds": (0.5, 600.0)}
FAULTS = ("steady", "kill", "stop", "redis", "redis-aof")
REDIS_FAULTS = ("redis", "redis-aof")


@dataclass
class LoadPlan:
    clients: int
    workers: int
    rate: float  # requests/s offered by all clients together
    seconds: float
    restart_after: float = 2.0  # kill: seconds between the kill and the restart
    capacity_rate: float = 0.0  # 0: no capacity run
    threads: int = 1
    max_batch: int = 32
    faults: tuple[str, ...] = ("steady", "kill")
    stop_for: float = 30.0  # stop: seconds between SIGSTOP and SIGCONT
    redis_down: float = 3.0  # redis, redis-aof: seconds between the crash and the restart


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
    refused_while_up: int = 0
    lost: int = 0
    duplicated: int = 0
    misrouted: int = 0  # answers to requests their client never made
    stuck: int = 0
    redis_lag: int | None = None  # what XINFO GROUPS says is waiting, for comparison
    recovered_s: float | None = None
    submitted: int = 0
    answered_rate: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def percentile_ms(self, q: float) -> float:
        return _percentile(self.latencies, q) * 1000 if self.latencies else float("nan")


@dataclass
class _Outage:
    """When Redis was away during a run (perf_counter times), for the refusal and
    recovery figures."""

    down_at: float | None = None
    up_at: float | None = None

    def covers(self, moment: float) -> bool:
        # A refusal lands after MOODMOJI_QUEUE_SUBMIT_WAIT_S of waiting; one that began
        # in the outage and lands just after it still belongs to it.
        if self.down_at is None:
            return False
        return self.down_at <= moment <= (self.up_at or float("inf")) + 1.0


def check_plan(plan: LoadPlan, settings: WorkerSettings) -> None:
    """One-line errors for a plan out of bounds or a Redis that is not on this machine."""
    for name, (low, high) in _LIMITS.items():
        value = getattr(plan, name)
        if not low <= value <= high:
            raise MoodmojiError(f"--{name} must be between {low:g} and {high:g}, not {value:g}")
    if not 0 <= plan.capacity_rate <= _LIMITS["rate"][1]:
        raise MoodmojiError(f"--capacity-rate must be between 0 and {_LIMITS['rate'][1]:g}")
    unknown = [fault for fault in plan.faults if fault not in FAULTS]
    if unknown or not plan.faults:
        raise MoodmojiError(f"--faults are some of {', '.join(FAULTS)}, not {unknown or 'none'}")
    if "stop" in plan.faults and plan.workers < 2:
        raise MoodmojiError("--faults stop needs --workers 2 or more: one must keep serving")
    if not 0 < plan.stop_for <= 300 or not 0 < plan.redis_down <= 60:
        raise MoodmojiError("--stop-for must be in (0, 300] s and --redis-down in (0, 60] s")
    url = urlsplit(settings.redis_url)
    if url.scheme != "redis" or url.hostname not in _LOOPBACK_HOSTS:
        raise MoodmojiError(
            f"bench load only talks to a Redis on this machine (redis://127.0.0.1:...), "
            f"not {url.scheme}://{url.hostname}; set MOODMOJI_REDIS_URL"
        )


# --- one client ----------------------------------------------------------------------


async def _offer(
    index: int, settings: WorkerSettings, rate: float, seconds: float, begin: float
) -> tuple[list[tuple[str, float | None, float]], dict]:
    """One client's share of the load: ([(outcome, latency, when it ended)], the client's
    answer counts: duplicates, foreign answers)."""
    transport = RedisStreamsTransport(settings)
    client = WorkerClient(transport, settings, reply_to=f"loadbench-{index}-{uuid.uuid4().hex[:6]}")
    timeout = settings.queue_claim_idle_ms / 1000 + _ANSWER_GRACE_S

    async def one(seed: int) -> tuple[str, float | None, float]:
        request = client.request(LABEL, seed=seed, size=SIZE, timeout=timeout)
        started = time.perf_counter()
        try:
            result = await client.submit(request, timeout=timeout)
        except WorkerBusy:  # QueueUnavailable too
            return "refused", None, time.perf_counter()
        except RequestTimedOut:
            with contextlib.suppress(QueueUnavailable):
                if await transport.fetch_result(request.request_id) is not None:
                    return "errors", None, time.perf_counter()
            return "lost", None, time.perf_counter()
        ended = time.perf_counter()
        return ("ok", ended - started, ended) if result.ok else ("errors", None, ended)

    try:
        async with client:
            interval = 1 / rate
            tasks = []
            for i in range(max(1, round(rate * seconds))):
                await asyncio.sleep(max(0.0, begin + i * interval - time.perf_counter()))
                tasks.append(asyncio.create_task(one(index * 1_000_000 + i)))
            outcomes = await asyncio.gather(*tasks)
        return outcomes, dict(client.stats)
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


async def _backlog(settings: WorkerSettings) -> tuple[int, int | None]:
    """(requests still queued as admission counts them, the lag XINFO GROUPS reports)."""
    transport = RedisStreamsTransport(settings)
    try:
        depth = await transport.queue_depth(LABEL)
        groups = await transport.redis.xinfo_groups(transport.request_stream(LABEL))
        lag = next((g.get("lag") for g in groups if g["name"] == settings.queue_group), None)
        return depth, lag
    finally:
        await transport.close()


async def _run(
    name: str,
    settings: WorkerSettings,
    clients: int,
    workers: int,
    rate: float,
    seconds: float,
    fault=None,
) -> RunReport:
    """Offer `rate` requests/s from `clients` clients; `fault(begin, events, outage)` runs
    beside them."""
    report = RunReport(name, clients, workers, rate, seconds)
    outage = _Outage()
    begin = time.perf_counter() + 0.1
    share = rate / clients
    loads = [
        _offer(i, settings, share, seconds, begin + i / rate)  # interleaved arrivals
        for i in range(clients)
    ]
    beside = [fault(begin, report.events, outage)] if fault else []
    per_client = (await asyncio.gather(*loads, *beside))[:clients]
    ended = []
    for outcomes, stats in per_client:
        report.submitted += len(outcomes)
        report.duplicated += stats.get("duplicate", 0) + stats.get("late", 0)
        report.misrouted += stats.get("foreign", 0)
        for outcome, latency, at in outcomes:
            ended.append(at)
            if outcome == "ok":
                report.latencies.append(latency)
                if outage.up_at is not None and at >= outage.up_at:
                    first = at - outage.up_at
                    report.recovered_s = min(report.recovered_s or first, first)
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome == "refused" and not outage.covers(at):
                    report.refused_while_up += 1
    report.latencies.sort()
    report.answered_rate = report.ok / (max(ended) - begin) if ended else 0.0
    report.stuck, report.redis_lag = await _backlog(settings)
    return report


async def _settle(settings: WorkerSettings, workers: int) -> None:
    """Between runs: until the queue is empty and every worker is back, or _SETTLE_S."""
    transport = RedisStreamsTransport(settings)
    give_up = time.monotonic() + _SETTLE_S
    try:
        while time.monotonic() < give_up:
            beats = await transport.heartbeats()
            if len(beats) >= workers and await transport.queue_depth(LABEL) == 0:
                return
            await asyncio.sleep(0.5)
    finally:
        await transport.close()


def _worker_processes(settings, registry: Path, count: int, plan: LoadPlan):
    return worker_processes(
        settings, registry, count, plan.max_batch, settings.queue_prefix, plan.threads
    )


async def _delete_keys(settings: WorkerSettings) -> None:
    transport = RedisStreamsTransport(settings)
    try:
        await transport.delete_queue()
    finally:
        await transport.close()


async def _at_a_third(begin: float, plan: LoadPlan) -> None:
    await asyncio.sleep(max(0.0, begin + plan.seconds / 3 - time.perf_counter()))


def _fault(name: str, processes: list, settings, registry: Path, plan: LoadPlan, redis):
    """The side task that makes run `name` what it is (None for steady)."""

    def at(begin: float) -> str:
        return f"{time.perf_counter() - begin:.1f} s"

    async def kill(begin: float, events: list[str], _outage: _Outage) -> None:
        await _at_a_third(begin, plan)
        processes[0].kill()
        await asyncio.to_thread(processes[0].wait)
        events.append(f"worker bench-0 SIGKILLed at {at(begin)}")
        await asyncio.sleep(plan.restart_after)
        # Same consumer name, as a supervisor restarting the unit would give it.
        [restarted] = _spawn_workers(
            settings, registry, 1, plan.max_batch, settings.queue_prefix, plan.threads
        )
        processes[0] = restarted
        events.append(f"started again at {at(begin)}")

    async def stop(begin: float, events: list[str], _outage: _Outage) -> None:
        await _at_a_third(begin, plan)
        stopped = processes[-1]
        stopped.send_signal(signal.SIGSTOP)
        events.append(f"worker bench-{len(processes) - 1} SIGSTOPped at {at(begin)}")
        try:
            await asyncio.sleep(plan.stop_for)
        finally:
            stopped.send_signal(signal.SIGCONT)
        events.append(f"SIGCONTed at {at(begin)}")

    async def crash_redis(begin: float, events: list[str], outage: _Outage) -> None:
        aof = name == "redis-aof"
        lead = min(_AOF_REWRITE_LEAD_S, plan.seconds / 6) if aof else 0.0
        await asyncio.sleep(max(0.0, begin + plan.seconds / 3 - lead - time.perf_counter()))
        if aof:
            await asyncio.to_thread(redis.rewrite_aof)
            events.append(f"AOF rewritten at {at(begin)}")
            await asyncio.sleep(lead)
        await asyncio.to_thread(redis.kill)
        outage.down_at = time.perf_counter()
        events.append(
            f"Redis SIGKILLed at {at(begin)}"
            + (" (AOF, fsync every second)" if aof else " (no persistence)")
        )
        await asyncio.sleep(plan.redis_down)
        redis.appendonly = aof
        await asyncio.to_thread(redis.start)  # returns once it serves, the AOF loaded
        outage.up_at = time.perf_counter()
        events.append(f"serving again at {at(begin)}")

    faults = {"kill": kill, "stop": stop, "redis": crash_redis, "redis-aof": crash_redis}
    return faults.get(name)


def measure(
    plan: LoadPlan, settings: WorkerSettings, checkpoint: Path, prefix: str | None = None
) -> list[RunReport]:
    """The fault runs on one set of workers, then, if asked, a capacity run on one fresh
    worker. Keys are under `prefix` (default a fresh one) and deleted afterwards; with a
    Redis fault, everything runs on a redis-server of the bench's own."""
    from worker.registry import ModelRegistry

    check_plan(plan, settings)
    prefix = prefix or f"moodmoji-loadbench-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-load-"))
    own_redis = None
    reports = []
    try:
        registry = scratch / "registry"
        ModelRegistry(registry).publish("bench", {LABEL: checkpoint}, activate=True)
        if any(fault in REDIS_FAULTS for fault in plan.faults):
            own_redis = LocalRedis(scratch / "redis", appendonly=True)
            own_redis.start()
            settings = settings.model_copy(update={"redis_url": own_redis.url})
        ours = settings.model_copy(update={"queue_prefix": f"{prefix}-runs"})
        try:
            with _worker_processes(ours, registry, plan.workers, plan) as processes:
                asyncio.run(_wait_for_heartbeats(ours, plan.workers))
                for name in plan.faults:
                    fault = _fault(name, processes, ours, registry, plan, own_redis)
                    run = _run(
                        name, ours, plan.clients, plan.workers, plan.rate, plan.seconds, fault
                    )
                    reports.append(asyncio.run(run))
                    print(_summary_line(reports[-1]), flush=True)
                    asyncio.run(_settle(ours, plan.workers))
        finally:
            asyncio.run(_delete_keys(ours))
        if plan.capacity_rate:
            ours = settings.model_copy(update={"queue_prefix": f"{prefix}-capacity"})
            try:
                with _worker_processes(ours, registry, 1, plan):
                    asyncio.run(_wait_for_heartbeats(ours, 1))
                    run = _run("capacity", ours, plan.clients, 1, plan.capacity_rate, plan.seconds)
                    reports.append(asyncio.run(run))
                    print(_summary_line(reports[-1]), flush=True)
            finally:
                asyncio.run(_delete_keys(ours))
    finally:
        if own_redis is not None:
            own_redis.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    return reports


# --- command -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=2, help="bot-side clients (reply streams)")
    parser.add_argument("--workers", type=int, default=2, help="`moodmoji worker` processes")
    parser.add_argument("--rate", type=float, default=40.0, help="offered load, requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument(
        "--faults",
        nargs="+",
        choices=FAULTS,
        default=["steady", "kill"],
        help="runs, in order: steady, kill (SIGKILL a worker), stop (SIGSTOP one), "
        "redis (crash Redis, no persistence), redis-aof (crash it with an AOF)",
    )
    parser.add_argument(
        "--restart-after", type=float, default=2.0, help="kill: seconds from kill to restart"
    )
    parser.add_argument(
        "--stop-for", type=float, default=30.0, help="stop: seconds from SIGSTOP to SIGCONT"
    )
    parser.add_argument(
        "--redis-down", type=float, default=3.0, help="redis, redis-aof: seconds Redis is down"
    )
    parser.add_argument(
        "--capacity-rate",
        type=float,
        default=0.0,
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
        faults=tuple(args.faults),
        stop_for=args.stop_for,
        redis_down=args.redis_down,
    )
    check_plan(plan, settings)
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="moodmoji-bench-load-model-"))
    try:
        checkpoint, described = _bench_checkpoint(args, settings, scratch)
        reports = measure(plan, settings, checkpoint)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    body = report_markdown(reports, plan, settings, described)
    body += (
        f"\n\nLoad average (1 min) before / after: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )
    if not args.no_write:
        command = (
            f"moodmoji bench load --clients {plan.clients} --workers {plan.workers} "
            f"--rate {plan.rate:g} --seconds {plan.seconds:g} --faults {' '.join(plan.faults)}"
            + (f" --stop-for {plan.stop_for:g}" if "stop" in plan.faults else "")
            + (f" --redis-down {plan.redis_down:g}" if set(plan.faults) & set(REDIS_FAULTS) else "")
            + (f" --capacity-rate {plan.capacity_rate:g}" if plan.capacity_rate else "")
        )
        print(f"wrote {write_section('load', body, command)}")
    bad = sum(
        r.lost + r.misrouted + r.stuck + r.refused_while_up for r in reports if r.name != "capacity"
    )
    if bad:
        print(f"LOST, MISROUTED, STUCK OR REFUSED WHILE REDIS WAS UP: {bad} requests")
        return 1
    return 0


def _summary_line(report: RunReport) -> str:
    recovered = f", recovered {report.recovered_s:.1f} s" if report.recovered_s is not None else ""
    return (
        f"{report.name}: {report.clients} clients, {report.workers} workers, offered "
        f"{report.offered_rate:g}/s, sent {report.submitted}, answered {report.ok} "
        f"({report.answered_rate:.1f}/s), p50 {report.percentile_ms(0.5):.0f} ms, "
        f"p99 {report.percentile_ms(0.99):.0f} ms, max {_max_ms(report):.0f} ms, errors "
        f"{report.errors}, refused {report.refused} ({report.refused_while_up} while Redis "
        f"was up), lost {report.lost}, stuck {report.stuck} (Redis lag {report.redis_lag}), "
        f"duplicated {report.duplicated}, misrouted {report.misrouted}{recovered}"
        + (f" ({'; '.join(report.events)})" if report.events else "")
    )


def _max_ms(report: RunReport) -> float:
    return report.latencies[-1] * 1000 if report.latencies else float("nan")


_RUN_TEXT = {
    "steady": "the load as offered.",
    "kill": "Requests the killed worker held are reclaimed by the others after the claim "
    "timeout, which is what the max latency shows.",
    "stop": "The stopped worker's batch is reclaimed after the claim timeout; once it runs "
    "again it answers that batch too, and the clients drop those second answers "
    "(*duplicated*).",
    "redis": "Everything Redis held is gone; each client resubmits what it still waits for "
    "when it sees Redis back, and workers re-create the consumer group.",
    "redis-aof": "Redis comes back with what its AOF held (at most the last second lost); "
    "clients resubmit what they wait for, and those already answered are replayed from "
    "their result keys (*duplicated*). *Redis lag* is what XINFO GROUPS reports waiting "
    "once the run is over; admission counts *stuck* instead.",
}


def report_markdown(
    reports: list[RunReport], plan: LoadPlan, settings: WorkerSettings, described: str
) -> str:
    lines = [
        f"{plan.clients} bot-side clients (one reply stream and connection pool each) and "
        f"`moodmoji worker` processes on this machine, one local Redis; generator: {described}; "
        f"{SIZE} px emojis, one per request, CPU, {plan.threads} torch thread(s) per worker, "
        f"max batch {plan.max_batch}, claim timeout {settings.queue_claim_idle_ms} ms, "
        f"queue limit {settings.queue_max_length}, submit wait "
        f"{settings.queue_submit_wait_s:g} s. Each run offers its rate for {plan.seconds:g} s; "
        "latency is submit to result in the client; *answered req/s* is answers over the "
        "time from the first request to the last answer; *refused (up)* counts refusals "
        "while Redis was serving; *recovered* is seconds from Redis serving again to the "
        "next answer.",
        "",
        "| run | workers | offered req/s | sent | answered | answered req/s | p50 ms | p99 ms "
        "| max ms | errors | refused (up) | lost | stuck (Redis lag) | duplicated | misrouted "
        "| recovered s |",
        "| --- |" + " ---: |" * 15,
    ]
    for r in reports:
        recovered = f"{r.recovered_s:.1f}" if r.recovered_s is not None else "-"
        lines.append(
            f"| {r.name} | {r.workers} | {r.offered_rate:g} | {r.submitted} | {r.ok} | "
            f"{r.answered_rate:.1f} | {r.percentile_ms(0.5):.0f} | {r.percentile_ms(0.99):.0f} | "
            f"{_max_ms(r):.0f} | {r.errors} | {r.refused} ({r.refused_while_up}) | {r.lost} | "
            f"{r.stuck} ({r.redis_lag}) | {r.duplicated} | {r.misrouted} | {recovered} |"
        )
    lines.append("")
    for r in reports:
        if r.name == "capacity":
            lines.append(
                f"*capacity*: one worker offered more than it can serve; it answered "
                f"{r.answered_rate:.1f} requests/s (the rest waited or were refused by "
                "backpressure): the figure for one CPU worker process on this machine."
            )
        else:
            events = f"{', '.join(r.events)}. " if r.events else ""
            lines.append(f"*{r.name}*: {events}{_RUN_TEXT[r.name]}")
    lines.append(
        "*lost*, *stuck*, *misrouted* and *refused while up* must be 0 in every fault run."
    )
    return "\n".join(lines)
