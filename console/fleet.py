"""What moves: workers, the queue, dead letters and request rate and latency, read every
`console_poll_s` from Redis (through the worker's public transport) and from each live
worker's Prometheus /metrics, and kept for `console_history_s`.

Heartbeat keys expire a few heartbeats after a worker stops, so a stopped worker would
simply vanish from `heartbeats()`. The watcher remembers every worker it has seen and
keeps its row, marked silent, until `console_forget_worker_s`: a silent worker is what an
operator needs to see, not a shorter list.

Rates and percentiles come from the workers' own counters and latency histogram: each
scrape adds what every worker's counters grew by since the last one (a restarted worker's
counters start again from zero, and count as grown by their whole value) to running
totals, so a window's requests and latency buckets are the difference between its first
and last sample, as Prometheus' `increase()` would compute them.
"""

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from console.jobs import job_summaries
from worker import LABELS

log = logging.getLogger(__name__)

REQUESTS_METRIC = "moodmoji_worker_requests"  # a counter: samples end in _total
LATENCY_METRIC = "moodmoji_worker_latency_seconds"  # a histogram: _bucket{le}
CHART_POINTS = 120  # most points of a chart the page draws
DEAD_LETTERS_SHOWN = 50
PAYLOAD_SHOWN = 300  # characters of a dead letter's entry shown beside its reason


@dataclass
class _Scrape:
    """One worker's counters at its last scrape."""

    requests: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass
class _Sample:
    at: float
    requests: float  # running total over every worker
    buckets: dict[float, float]  # running total per latency bucket upper bound
    depth: dict[str, int]


def parse_worker_metrics(text: str) -> _Scrape:
    """Requests answered (every outcome) and latency buckets summed over labels."""
    scrape = _Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{REQUESTS_METRIC}_total":
                scrape.requests += sample.value
            elif sample.name == f"{LATENCY_METRIC}_bucket":
                bound = float(sample.labels["le"])
                scrape.buckets[bound] = scrape.buckets.get(bound, 0.0) + sample.value
    return scrape


def _grown(now: float, before: float) -> float:
    return now - before if now >= before else now  # below: the worker restarted


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile on cumulative bucket counts; None without data."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # above the top finite bound: that bound is all we know
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


class FleetWatcher:
    def __init__(self, settings, transport, retrain_queue, http) -> None:
        """`transport`: a worker Transport; `retrain_queue`: a RetrainQueue; `http`: an
        aiohttp ClientSession for the workers' /metrics."""
        self.settings = settings
        self.transport = transport
        self.retrain_queue = retrain_queue
        self.http = http
        self.workers: dict[str, dict] = {}  # id -> {"info", "last_seen", "beat_at"}
        self.scrapes: dict[str, _Scrape] = {}
        self.totals = _Scrape()
        self.samples: deque[_Sample] = deque()
        self.queue: dict[str, dict] = {}
        self.dead_letters: list[dict] = []
        self.jobs: list[dict] = []
        self.error: str | None = None  # why the last poll failed (Redis away), if it did
        self.polled_at: float | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: show it on the page, try again
                self.error = f"cannot read the queue: {error}"
                log.warning("console poll failed: %s", error)
            await asyncio.sleep(self.settings.console_poll_s)

    async def poll(self) -> None:
        now = time.time()
        beats = await self.transport.heartbeats()
        self._remember(beats, now)
        for label in LABELS:
            pending, waiting = await self.transport.queue_backlog(label)
            self.queue[label] = {"pending": pending, "waiting": waiting, "depth": pending + waiting}
        letters = await self.transport.dead_letters(DEAD_LETTERS_SHOWN)
        self.dead_letters = [
            {
                "at": letter.at,
                "label": letter.label,
                "reason": letter.reason,
                "deliveries": letter.delivery_count,
                "worker_id": letter.worker_id,
                "payload": letter.payload[:PAYLOAD_SHOWN],
            }
            for letter in reversed(letters)  # newest first
        ]
        await self._scrape(beats)
        self.samples.append(
            _Sample(
                now,
                self.totals.requests,
                dict(self.totals.buckets),
                {label: q["depth"] for label, q in self.queue.items()},
            )
        )
        while self.samples and self.samples[0].at < now - self.settings.console_history_s:
            self.samples.popleft()
        self.jobs = await self._jobs()
        self.polled_at = now

    def _remember(self, beats: dict[str, dict], now: float) -> None:
        for worker_id, info in beats.items():
            seen = self.workers.get(worker_id)
            if seen is None or seen["beat_at"] != info.get("at"):
                # Timed by this clock, not the worker's: hosts' clocks may disagree.
                self.workers[worker_id] = {
                    "info": info,
                    "last_seen": now,
                    "beat_at": info.get("at"),
                }
        forget = now - self.settings.console_forget_worker_s
        for worker_id in [w for w, seen in self.workers.items() if seen["last_seen"] < forget]:
            del self.workers[worker_id]
            self.scrapes.pop(worker_id, None)

    async def _scrape(self, beats: dict[str, dict]) -> None:
        for worker_id, info in beats.items():
            port = info.get("metrics_port")
            if not port or self.http is None:
                continue
            host = self.settings.console_scrape_host or info.get("host") or "127.0.0.1"
            try:
                async with self.http.get(f"http://{host}:{port}/metrics") as response:
                    text = await response.text()
                scrape = parse_worker_metrics(text)
            except Exception as error:  # a worker without a reachable /metrics: no rate
                log.debug("cannot scrape %s at %s:%s: %s", worker_id, host, port, error)
                continue
            before = self.scrapes.get(worker_id, _Scrape())
            self.totals.requests += _grown(scrape.requests, before.requests)
            for bound, count in scrape.buckets.items():
                grown = _grown(count, before.buckets.get(bound, 0.0))
                self.totals.buckets[bound] = self.totals.buckets.get(bound, 0.0) + grown
            self.scrapes[worker_id] = scrape

    async def _jobs(self) -> list[dict]:
        return await job_summaries(self.settings, self.retrain_queue)

    # --- what the page reads ----------------------------------------------------------

    def worker_rows(self, now: float | None = None) -> list[dict]:
        now = now or time.time()
        rows = []
        for worker_id, seen in sorted(self.workers.items()):
            info, age = seen["info"], now - seen["last_seen"]
            rows.append(
                {
                    "id": worker_id,
                    "host": info.get("host"),
                    "labels": info.get("labels") or [],
                    "version": info.get("model_version"),
                    "device": info.get("device"),
                    "precision": info.get("precision"),
                    "max_batch": info.get("max_batch"),
                    "batches": info.get("batches"),
                    "sampled": info.get("sampled"),
                    "queue_lag": info.get("queue_lag") or {},
                    "last_seen": seen["last_seen"],
                    "age_s": round(age, 1),
                    "silent": age > self.settings.console_worker_silent_s,
                }
            )
        return rows

    def traffic(self) -> dict:
        """Requests per second and p50 / p99 latency over the window, and chart series."""
        samples = list(self.samples)
        if len(samples) < 2:
            return {"window_s": 0, "rps": None, "p50_s": None, "p99_s": None, "series": []}
        first, last = samples[0], samples[-1]
        window = last.at - first.at
        buckets = {
            bound: count - first.buckets.get(bound, 0.0) for bound, count in last.buckets.items()
        }
        stride = max(1, math.ceil(len(samples) / CHART_POINTS))
        chosen = samples[::stride]
        if chosen[-1] is not last:
            chosen.append(last)
        series = [
            {
                "at": b.at,
                "rps": (b.requests - a.requests) / (b.at - a.at) if b.at > a.at else 0.0,
                "depth": b.depth,
            }
            for a, b in itertools.pairwise(chosen)
        ]
        return {
            "window_s": round(window, 1),
            "requests": last.requests - first.requests,
            "rps": (last.requests - first.requests) / window if window > 0 else None,
            "p50_s": histogram_quantile(0.5, buckets),
            "p99_s": histogram_quantile(0.99, buckets),
            "series": series,
        }

    def snapshot(self) -> dict:
        return {
            "polled_at": self.polled_at,
            "error": self.error,
            "silent_after_s": self.settings.console_worker_silent_s,
            "workers": self.worker_rows(),
            "queue": self.queue,
            "max_length": self.settings.queue_max_length,
            "dead_letters": self.dead_letters,
            "traffic": self.traffic(),
            "jobs": self.jobs,
        }
