"""The sampling service behind `moodmoji worker`: micro-batches requests through the GAN.

One loop per label takes every request waiting (up to `worker_max_batch`) in one read,
and waits for more only when the arrival rate says one is due within
`worker_batch_wait_ms` (a lone request never waits). It samples the batch in one
generator forward pass on a sampling thread: up to `worker_sampling_threads` passes at
once (by default one per core on a CPU, one on a GPU, which runs passes in turn), and
while every thread is busy it reads the next pass's requests ahead. On a CPU the
sampling thread then resizes and PNG-encodes what its pass finished; on a GPU a pool of
threads does, so the sampling thread can go back to the GPU. The whole batch is
answered in one round trip, which acknowledges each request; meanwhile the threads
sample the next passes, up to `worker_batches_in_flight` batches per thread in hand.

Around it: a registry watcher loads a newly activated model version in the background
and swaps it in between batches (a batch in flight finishes on the model it started
with); a heartbeat announces the worker's models and queue lag and trims acknowledged
requests; `request_stop()` (SIGTERM) lets the current batches finish, then returns.
"""

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from moodmoji.errors import MoodmojiError
from worker.metrics import WorkerMetrics
from worker.protocol import ErrorCode, GenerateResult, Timings
from worker.registry import ModelRegistry, RegistryError
from worker.settings import WorkerSettings
from worker.transport import Delivery, Transport

log = logging.getLogger(__name__)


def load_samplers(
    registry: ModelRegistry,
    version: str,
    labels: list[str],
    device: str,
    gate: bool = True,
    precision: str = "fp32",
    compile: bool = False,
) -> dict[str, object]:
    """An `EmojiSampler` per label for `version`; imports torch, so only workers call it.

    `gate`: keep the shape gate the checkpoints carry (`MOODMOJI_WORKER_SHAPE_GATE`);
    `precision`, `compile`: `MOODMOJI_WORKER_PRECISION`, `MOODMOJI_WORKER_COMPILE`."""
    from gan import EmojiSampler

    return {
        label: EmojiSampler.from_checkpoint(
            registry.checkpoint_path(label, version),
            device,
            gate=gate,
            precision=precision,
            compile=compile,
        )
        for label in labels
    }


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    Kubernetes limit), which `os.cpu_count()` does not see."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    return max(1, cores or 1)


def resolve_sampling_threads(settings: WorkerSettings, on_gpu: bool) -> int:
    """`worker_sampling_threads`, or by default one per core this process may use on a
    CPU (each pass on one torch thread: two passes on two cores drew 1.9-2.1x the
    emojis of one, docs/benchmarks.md) and one on a GPU, which runs passes in turn."""
    wanted = settings.worker_sampling_threads
    if wanted > 1 and on_gpu and settings.worker_compile:
        raise MoodmojiError(
            f"MOODMOJI_WORKER_SAMPLING_THREADS={wanted} with MOODMOJI_WORKER_COMPILE on a "
            "GPU: its CUDA graphs serve one thread; use 1 (or 0, the default)"
        )
    if wanted:
        return wanted
    return 1 if on_gpu else available_cpus()


def check_loads(registry: ModelRegistry, version: str, labels: list[str]) -> list[str]:
    """Why `version` would not serve `labels` in a fresh worker, one line per label
    (empty: it loads): each checkpoint loaded by `load_samplers` on the CPU, and one
    small emoji drawn from it. What `ModelRegistry.promote` asks before a version goes live."""
    problems = []
    for label in labels:
        try:
            [sampler] = load_samplers(registry, version, [label], "cpu").values()
            sampler.sample_batch([(0, 1)], 16)
        except Exception as error:
            problems.append(f"{label}: {_first_line(error)}")
    return problems


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def encode_groups(groups: list[tuple[object, int]], compress_level: int) -> list[list[bytes]]:
    """PNGs for (images tensor, size) groups: one pool job, so one hand-off per chunk of
    a batch instead of one per request."""
    from gan import encode_emojis

    return [encode_emojis(images, size, compress_level) for images, size in groups]


def step_and_encode(sampler, draws: list["_Draw"], compress_level: int):
    """One `sampler.step` for `draws`, then the PNGs of the draws it finished, in order,
    and the seconds the encoding took: a sampling thread's whole job on a CPU."""
    sampler.step([draw.job for draw in draws])
    started = time.perf_counter()
    finished = [draw for draw in draws if sampler.finished(draw.job)]
    pngs = encode_groups(
        [(d.job.images(), d.group[0].request.size) for d in finished], compress_level
    )
    return pngs, time.perf_counter() - started


def split_evenly(items: list, parts: int) -> list[list]:
    """`items` in at most `parts` runs of nearly equal length, in order (none empty)."""
    if not items:
        return []
    step = -(-len(items) // max(1, min(parts, len(items))))
    return [items[i : i + step] for i in range(0, len(items), step)]


class ArrivalRate:
    """Requests per second of one label, from the arrival times of the last few."""

    def __init__(self, window: int = 32, horizon_s: float = 1.0) -> None:
        self._arrivals: collections.deque[float] = collections.deque(maxlen=window)
        self._horizon_s = horizon_s

    def add(self, arrived_at: float) -> None:
        self._arrivals.append(arrived_at)

    def per_second(self, now: float) -> float:
        recent = [t for t in self._arrivals if now - t <= self._horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-3, recent[-1] - recent[0])


@dataclass
class _Draw:
    """A request (with its duplicates) being sampled: its model, its job, its time so far."""

    group: list[Delivery]
    sampler: object
    job: object
    started: float = 0.0  # when its first pass began
    sample_s: float = 0.0  # time in the passes it rode in
    batch_size: int = 1  # requests in the pass that finished it


class SamplingService:
    def __init__(
        self,
        transport: Transport,
        settings: WorkerSettings | None = None,
        *,
        registry: ModelRegistry | None = None,
        samplers: dict[str, object] | None = None,
        worker_id: str | None = None,
        labels: list[str] | None = None,
    ) -> None:
        """Serve from `registry` (with hot reload), or from fixed `samplers` by label."""
        if (registry is None) == (samplers is None):
            raise ValueError("give a registry or samplers, not both or neither")
        self.transport = transport
        self.settings = settings or WorkerSettings()
        self.registry = registry
        self.samplers: dict[str, object] = dict(samplers or {})
        self.model_version: str | None = None if registry else "fixed"
        self.labels = labels or (list(self.samplers) if samplers else self.settings.worker_labels)
        self.worker_id = (
            worker_id or self.settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        )
        self.metrics = WorkerMetrics()
        self.batches_served = 0
        self.requests_sampled = 0
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._started_at = time.time()
        self._failed_version: str | None = None
        # Forward passes run off the event loop, on `sampling_threads` threads (set once the
        # models, and so the device, are known).
        self.sampling_threads = 1
        self._sampling_pool: ThreadPoolExecutor | None = None
        # Where PNGs are encoded (`_start_pools`): by the sampling threads, or a pool.
        self.encode_inline = False
        self.encode_threads = 0
        self._encoding_pool: ThreadPoolExecutor | None = None
        self._arrivals: dict[str, ArrivalRate] = {}
        self._in_flight: set[asyncio.Task] = set()

    # --- lifecycle ---------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batches in hand, then return from `run` (the SIGTERM handler)."""
        self._stop.set()

    async def wait_ready(self) -> None:
        """Until models are loaded and the service takes requests."""
        await self._ready.wait()

    async def run(self) -> None:
        if self.settings.worker_torch_threads:
            # On a shared CPU, fewer threads than cores avoid spinning against other work.
            import torch

            torch.set_num_threads(self.settings.worker_torch_threads)
        if self.registry is not None:
            await self._load_first_that_loads()
        else:
            for label, sampler in self.samplers.items():
                self.metrics.set_model(label, getattr(sampler, "version", "fixed"))
        on_gpu = any(
            getattr(getattr(sampler, "device", None), "type", "cpu") != "cpu"
            for sampler in self.samplers.values()
        )
        self._start_pools(on_gpu)
        if self.settings.worker_metrics_port:
            self.metrics.serve(self.settings.worker_metrics_port)
        log.info("worker %s serving %s (model %s)", self.worker_id, self.labels, self.model_version)
        self._ready.set()
        tasks = [asyncio.create_task(self._serve_label(label)) for label in self.labels]
        helpers = [asyncio.create_task(self._heartbeat_loop())]
        if self.registry is not None:
            helpers.append(asyncio.create_task(self._watch_registry()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for pool in {self._sampling_pool, self._encoding_pool} - {None}:
                pool.shutdown(wait=False)
            log.info("worker %s stopped", self.worker_id)

    def _start_pools(self, on_gpu: bool) -> None:
        """The sampling threads, and where encoding runs.

        On a CPU (`MOODMOJI_WORKER_ENCODE_THREADS=0`) each sampling thread encodes what its
        own pass finished: a pool of encoders beside it only gave the cores more threads to
        switch between. At 200 requests/s on two cores, every thread of the worker, the
        client and Redis waited about as long runnable as it ran, on each of a request's
        hand-offs; encoding in the pass cut p50 from 59-73 to 31-48 ms and raised the drain
        from 417-482 to 499-543 emojis/s (docs/benchmarks.md). On a GPU the sampling thread
        must go back to the GPU, so PNGs are encoded on threads of their own."""
        settings = self.settings
        self.sampling_threads = resolve_sampling_threads(settings, on_gpu)
        self._sampling_pool = ThreadPoolExecutor(self.sampling_threads, thread_name_prefix="sample")
        self.encode_inline = not on_gpu and not settings.worker_encode_threads
        if self.encode_inline:
            self.encode_threads, self._encoding_pool = self.sampling_threads, self._sampling_pool
        else:
            self.encode_threads = settings.worker_encode_threads or available_cpus()
            self._encoding_pool = ThreadPoolExecutor(self.encode_threads, thread_name_prefix="png")

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # --- batching ----------------------------------------------------------

    async def _serve_label(self, label: str) -> None:
        settings = self.settings
        threads = self.sampling_threads
        # Up to `threads` passes sample at once, one per sampling thread. What a pass
        # finished is encoded and answered as a task beside the next passes, at most
        # `worker_batches_in_flight` per sampling thread at once.
        room = asyncio.Semaphore(settings.worker_batches_in_flight * threads)
        passes: set[asyncio.Future] = set()
        # Requests for the next passes: the gate's rejects (they ride again) and requests
        # read while every sampling thread was busy.
        carried: list[_Draw] = []
        reading: asyncio.Future | None = None
        read_ahead = False  # a read taken with every thread busy, since a pass last ended
        try:
            while not self._stop.is_set():
                try:
                    busy = len(passes) >= threads
                    if reading is None and not (busy and read_ahead):
                        # A thread free: wait for requests (a pass that ends wakes the loop
                        # too). Every thread busy: read the next pass's requests ahead,
                        # once, without waiting; reading and screening them cost the event
                        # loop about a fifth of a pass.
                        block = 0 if busy or carried else settings.worker_block_ms
                        room_left = settings.worker_max_batch - len(carried)
                        reading = asyncio.ensure_future(
                            self._next_requests(label, room_left, block, wait_for_more=not busy)
                        )
                        read_ahead = busy
                    done, _ = await asyncio.wait(
                        [task for task in (reading, *passes) if task is not None],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for task in done & passes:
                        passes.discard(task)
                        read_ahead = False
                        carried += self._unfinished(label, task)
                    if reading in done:
                        task, reading = reading, None
                        carried += task.result()
                    while carried and len(passes) < threads:
                        batch, carried = self._next_batch(carried)
                        passes.add(asyncio.ensure_future(self._sample_pass(label, batch, room)))
                except Exception:
                    # Redis gone for longer than the reconnect window, or a bug: keep serving;
                    # unacknowledged entries are reclaimed, nothing is lost.
                    log.exception("worker %s: %s loop failed; retrying", self.worker_id, label)
                    await self._sleep_unless_stopped(1.0)
            # Stopping: what was read is served too, and what is half drawn is finished,
            # rather than left pending for the claim timeout.
            if reading is not None:
                with contextlib.suppress(Exception):
                    carried += await reading
            for task in asyncio.as_completed(passes):
                with contextlib.suppress(Exception):
                    carried += await task
            while carried:
                batch, carried = self._next_batch(carried)
                carried = await self._sample_pass(label, batch, room) + carried
        finally:
            # Stopping: the batches already sampled are still answered.
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _next_batch(self, draws: list["_Draw"]) -> tuple[list["_Draw"], list["_Draw"]]:
        """(the next pass's draws, the rest): at most `worker_max_batch`, oldest first."""
        most = self.settings.worker_max_batch
        return draws[:most], draws[most:]

    def _unfinished(self, label: str, finished_pass: asyncio.Future) -> list["_Draw"]:
        """What a pass that ended left to draw; none if it failed outside its sampling
        (which `_sample_pass` handles): those requests are reclaimed from Redis."""
        error = finished_pass.exception()
        if error is None:
            return finished_pass.result()
        log.error("a %s pass failed", label, exc_info=error)
        return []

    async def _next_requests(
        self, label: str, room: int, block_ms: int, wait_for_more: bool = True
    ) -> list["_Draw"]:
        """Draws for up to `room` requests queued now, waiting up to `block_ms` for one to
        come; `wait_for_more`: then wait for more only when one is due (`_more_if_due`)."""
        if room <= 0:
            return []
        batch = await self.transport.fetch(label, self.worker_id, room, block_ms)
        if not batch:
            return []
        if self._stop.is_set():
            # Taken while stopping: hand back now rather than make others wait for the
            # claim timeout.
            await self.transport.release(batch)
            return []
        if wait_for_more:
            batch += await self._more_if_due(label, batch)
        else:
            self._note_arrivals(label, batch)
        return await self._screen_batch(label, batch)

    def _track(self, answering, room: asyncio.Semaphore) -> None:
        if answering is None:
            room.release()
            return
        task = asyncio.ensure_future(answering)
        self._in_flight.add(task)

        def done(task: asyncio.Task) -> None:
            self._in_flight.discard(task)
            room.release()
            if not task.cancelled() and task.exception() is not None:
                log.error("answering a batch failed", exc_info=task.exception())

        task.add_done_callback(done)

    async def _more_if_due(self, label: str, batch: list[Delivery]) -> list[Delivery]:
        """More requests for a batch that is not full, if one is due within the wait.

        The fetch already took everything queued. Waiting longer pays only when another
        request will come soon: with the recent arrival rate r, the next is due in about
        1/r s; wait that long (at most `worker_batch_wait_ms`) only if it fits, and then
        read without blocking. Redis's own BLOCK timeouts are served on its 100 ms clock
        (hz 10), which is why the wait is an asyncio sleep, not a blocking read."""
        rate = self._note_arrivals(label, batch)
        wait_s = self.settings.worker_batch_wait_ms / 1000
        room = self.settings.worker_max_batch - len(batch)  # (carried draws may come on top)
        if wait_s <= 0 or room <= 0:
            return []
        per_second = rate.per_second(time.time())
        if per_second <= 0 or 1 / per_second > wait_s:
            return []
        await self._sleep_unless_stopped(1 / per_second)
        more = await self.transport.fetch(label, self.worker_id, room, 0)
        self._note_arrivals(label, more)
        return more

    def _note_arrivals(self, label: str, batch: list[Delivery]) -> "ArrivalRate":
        rate = self._arrivals.setdefault(label, ArrivalRate())
        for delivery in batch:
            rate.add(delivery.request.created_at)
        return rate

    async def _screen_batch(self, label: str, batch: list[Delivery]) -> list["_Draw"]:
        """Answer what needs no sampling (replays, expired, no model); a draw for the rest."""
        sampler = self.samplers.get(label)  # this batch's model, whatever reloads meanwhile
        stored = await self.transport.stored_results([d.request.request_id for d in batch])
        now = time.time()
        to_sample: dict[str, list[Delivery]] = {}
        answers = []
        for delivery in batch:
            request = delivery.request
            if request.request_id in stored:
                replay = stored[request.request_id].model_copy(update={"replayed": True})
                answers.append(self.transport.replay(delivery, replay))
                self.metrics.requests.labels(label, "replayed").inc()
            elif request.expired(now):
                answers.append(
                    self._fail(delivery, ErrorCode.DEADLINE_EXCEEDED, "past its deadline")
                )
            elif sampler is None:
                answers.append(self._fail(delivery, ErrorCode.NO_MODEL, f"no {label} model"))
            else:
                # A request_id twice in one batch is sampled once and answered twice.
                to_sample.setdefault(request.request_id, []).append(delivery)
        await asyncio.gather(*answers)
        self.batches_served += 1
        return [
            _Draw(group, sampler, sampler.job(group[0].request.seed, group[0].request.count))
            for group in to_sample.values()
        ]

    async def _fail(self, delivery: Delivery, code: ErrorCode, message: str) -> None:
        label = delivery.label
        self.metrics.requests.labels(label, "failed").inc()
        self.metrics.errors.labels(label, code.value).inc()
        result = GenerateResult.failure(delivery.request.request_id, code, message, self.worker_id)
        await self.transport.complete(delivery, result)

    async def _sample_pass(self, label: str, draws: list["_Draw"], room) -> list["_Draw"]:
        """One forward pass for `draws` (all of one model: a reload waits for the draws
        of the old one to finish); hands the finished ones to be encoded and answered,
        returns the unfinished ones."""
        sampler = draws[0].sampler
        now_drawing = [d for d in draws if d.sampler is sampler]
        later = [d for d in draws if d.sampler is not sampler]
        await room.acquire()
        started = time.time()
        try:
            loop = asyncio.get_running_loop()
            if self.encode_inline:
                pngs, encode_s = await loop.run_in_executor(
                    self._sampling_pool,
                    step_and_encode,
                    sampler,
                    now_drawing,
                    self.settings.worker_png_level,
                )
            else:
                await loop.run_in_executor(
                    self._sampling_pool, sampler.step, [d.job for d in now_drawing]
                )
                pngs, encode_s = None, 0.0
        except Exception:
            log.exception("a %s pass of %d failed; sampling one by one", label, len(draws))
            self._track(self._isolate_poison(label, now_drawing), room)
            return later
        except BaseException:
            room.release()
            raise
        sample_s = time.time() - started - encode_s
        self.metrics.sample_seconds.labels(label).observe(sample_s)
        self.metrics.batch_size.labels(label).observe(len(now_drawing))
        finished, unfinished = [], []
        for draw in now_drawing:
            draw.sample_s += sample_s
            draw.started = draw.started or started
            draw.batch_size = len(now_drawing)
            (finished if sampler.finished(draw.job) else unfinished).append(draw)
        self.requests_sampled += len(finished)
        if not finished:
            answering = None
        elif pngs is not None:  # encoded in the pass, in the order of `finished`
            answering = self._answer(label, finished, pngs, encode_s * 1000)
        else:
            answering = self._encode_and_answer(label, finished)
        self._track(answering, room)
        return unfinished + later

    async def _isolate_poison(self, label, draws: list["_Draw"]) -> None:
        """Sample each request alone: the ones that still fail are dead-lettered."""
        loop = asyncio.get_running_loop()
        for draw in draws:
            request = draw.group[0].request
            started = time.time()
            try:
                [images] = await loop.run_in_executor(
                    self._sampling_pool,
                    draw.sampler.sample_tensor,
                    [(request.seed, request.count)],
                )
            except Exception as error:
                reason = f"sampling failed: {type(error).__name__}: {error}"
                self.metrics.requests.labels(label, "failed").inc()
                self.metrics.errors.labels(label, ErrorCode.SAMPLING_FAILED.value).inc()
                for delivery in draw.group:
                    failure = GenerateResult.failure(
                        delivery.request.request_id,
                        ErrorCode.SAMPLING_FAILED,
                        reason,
                        self.worker_id,
                    )
                    await self.transport.dead_letter(delivery, reason, failure, self.worker_id)
                continue
            alone = _Draw(draw.group, draw.sampler, draw.job, started, time.time() - started)
            await self._encode_and_answer(label, [alone], [images])

    async def _encode(self, jobs: list[tuple[object, int]]) -> list[list[bytes]]:
        """PNGs per (images, size), the batch split into one job per encoding thread."""
        loop = asyncio.get_running_loop()
        level = self.settings.worker_png_level
        encoded = await asyncio.gather(
            *(
                loop.run_in_executor(self._encoding_pool, encode_groups, chunk, level)
                for chunk in split_evenly(jobs, self.encode_threads)
            )
        )
        return [pngs for chunk in encoded for pngs in chunk]

    async def _encode_and_answer(self, label, draws: list["_Draw"], images=None) -> None:
        if images is None:
            images = [draw.job.images() for draw in draws]
        encode_started = time.time()
        sizes = [draw.group[0].request.size for draw in draws]
        pngs = await self._encode(list(zip(images, sizes, strict=True)))
        await self._answer(label, draws, pngs, (time.time() - encode_started) * 1000)

    async def _answer(self, label, draws: list["_Draw"], pngs: list[list[bytes]], encode_ms):
        """Store and send the finished draws' results, one pipeline for the batch."""
        answers = []
        for draw, group_pngs in zip(draws, pngs, strict=True):
            request = draw.group[0].request
            result = GenerateResult(
                request_id=request.request_id,
                images=group_pngs,
                model_version=draw.sampler.version,
                worker_id=self.worker_id,
                timings=Timings(
                    queued_ms=max(0.0, (draw.started - request.created_at) * 1000),
                    sample_ms=draw.sample_s * 1000,
                    encode_ms=encode_ms,
                    batch_size=draw.batch_size,
                ),
            )
            answers += [(delivery, result) for delivery in draw.group]
        await self.transport.complete_many(answers)
        now = time.time()
        for draw in draws:
            request = draw.group[0].request
            self.metrics.requests.labels(label, "sampled").inc(len(draw.group))
            self.metrics.latency.labels(label).observe(max(0.0, now - request.created_at))

    # --- hot reload --------------------------------------------------------

    async def _load_first_that_loads(self) -> None:
        """At start: the live version, or, if it does not load (promoted by force), the
        newest one the rollback history would go back to that does, so a restart or a
        scale-up serves like the workers already running."""
        registry = self.registry
        candidates = await asyncio.to_thread(registry.candidates)
        failures = []
        for version in candidates:
            try:
                samplers = await self._load(version)
            except Exception as error:
                failures.append(f"{version} ({_first_line(error)})")
                log.error("cannot load version %r: %s", version, error)
                continue
            self._install(version, samplers)
            if version != candidates[0]:
                self._failed_version = candidates[0]  # the watcher will not retry it
                log.error("live version %r does not load; serving %r", candidates[0], version)
            return
        raise RegistryError(f"no model version could be loaded: {'; '.join(failures)}")

    async def _load(self, version: str) -> dict[str, object]:
        """This worker's labels of `version`, loaded off the event loop, as its settings say."""
        settings = self.settings
        return await asyncio.to_thread(
            load_samplers,
            self.registry,
            version,
            self.labels,
            settings.device,
            settings.worker_shape_gate,
            settings.worker_precision,
            settings.worker_compile,
        )

    def _install(self, version: str, samplers: dict[str, object]) -> None:
        self.samplers = samplers  # one assignment: the next batch of each label sees it
        self.model_version = version
        self._failed_version = None
        for label, sampler in samplers.items():
            self.metrics.set_model(label, sampler.version)
        log.info("worker %s now serves model version %r", self.worker_id, version)

    async def _reload_if_changed(self) -> None:
        registry = self.registry
        version = await asyncio.to_thread(registry.active_version)
        if version in (self.model_version, self._failed_version):
            return
        try:
            samplers = await self._load(version)
        except Exception:
            # Keep serving the old model; a broken publish must not take the fleet down.
            log.exception("cannot load version %r; staying on %r", version, self.model_version)
            self._failed_version = version
            return
        self._install(version, samplers)

    async def _watch_registry(self) -> None:
        while not self._stop.is_set():
            await self._sleep_unless_stopped(self.settings.registry_poll_s)
            try:
                await self._reload_if_changed()
            except Exception:
                log.exception("registry check failed")

    # --- health ------------------------------------------------------------

    def health(self, queue_lag: dict[str, int]) -> dict:
        sampler = next(iter(self.samplers.values()), None)
        return {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "labels": self.labels,
            "model_version": self.model_version,
            "models": {
                label: getattr(sampler, "version", None) for label, sampler in self.samplers.items()
            },
            # How it samples: what an operator compares across workers.
            "device": str(getattr(sampler, "device", self.settings.device)),
            "precision": str(getattr(sampler, "precision", "")).removeprefix("torch.") or None,
            "max_batch": self.settings.worker_max_batch,
            "sampling_threads": self.sampling_threads,
            "encode_threads": self.encode_threads,
            # Where this worker's /metrics answers (0: nowhere), for the operator console.
            "metrics_port": self.settings.worker_metrics_port,
            "queue_lag": queue_lag,
            "batches": self.batches_served,
            "sampled": self.requests_sampled,
            "started_at": self._started_at,
            "at": time.time(),
        }

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.worker_heartbeat_s
        while not self._stop.is_set():
            try:
                lag = {}
                for label in self.labels:
                    lag[label] = await self.transport.queue_depth(label)
                    self.metrics.queue_depth.labels(label).set(lag[label])
                    await self.transport.trim(label)
                # Every kind of dead letter (garbage, redelivered too often, poison), so an
                # alert on this gauge growing sees them all; errors_total sees poison only.
                self.metrics.dead_letters.set(await self.transport.dead_letter_count())
                await self.transport.heartbeat(self.worker_id, self.health(lag), interval * 3)
            except Exception as error:
                log.warning("heartbeat failed: %s", error)
            await self._sleep_unless_stopped(interval)
