"""The sampling service behind `moodmoji worker`: micro-batches requests through the GAN.

One loop per label takes up to `worker_max_batch` requests from the transport, waits
at most `worker_batch_wait_ms` for the batch to fill once the first one arrived, runs
one generator forward pass for all of them (on a single sampling thread, so two labels
never fight over the device), encodes PNGs on a thread pool off the event loop, and
stores each result, which acknowledges the request.

Around it: a registry watcher loads a newly activated model version in the background
and swaps it in between batches (a batch in flight finishes on the model it started
with); a heartbeat announces the worker's models and queue lag and trims acknowledged
requests; `request_stop()` (SIGTERM) lets the current batches finish, then returns.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from worker.metrics import WorkerMetrics
from worker.protocol import ErrorCode, GenerateResult, Timings
from worker.registry import ModelRegistry, RegistryError
from worker.settings import WorkerSettings
from worker.transport import Delivery, Transport

log = logging.getLogger(__name__)


def load_samplers(
    registry: ModelRegistry, version: str, labels: list[str], device: str, gate: bool = True
) -> dict[str, object]:
    """An `EmojiSampler` per label for `version`; imports torch, so only workers call it.

    `gate`: keep the shape gate the checkpoints carry (`MOODMOJI_WORKER_SHAPE_GATE`)."""
    from gan import EmojiSampler

    return {
        label: EmojiSampler.from_checkpoint(
            registry.checkpoint_path(label, version), device, gate=gate
        )
        for label in labels
    }


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


def encode_pngs(images: list, compress_level: int) -> list[bytes]:
    from gan import png_bytes

    return [png_bytes(image, compress_level) for image in images]


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
        # One sampling thread: forward passes run one at a time, off the event loop.
        self._sampling_pool = ThreadPoolExecutor(1, thread_name_prefix="sample")
        self._encoding_pool = ThreadPoolExecutor(2, thread_name_prefix="png")

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
            self._sampling_pool.shutdown(wait=False)
            self._encoding_pool.shutdown(wait=False)
            log.info("worker %s stopped", self.worker_id)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # --- batching ----------------------------------------------------------

    async def _serve_label(self, label: str) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                batch = await self.transport.fetch(
                    label, self.worker_id, settings.worker_max_batch, settings.worker_block_ms
                )
                if not batch:
                    continue
                if self._stop.is_set():
                    # Taken while stopping: hand back now rather than make others wait
                    # for the claim timeout.
                    await self.transport.release(batch)
                    break
                fill_until = loop.time() + settings.worker_batch_wait_ms / 1000
                while len(batch) < settings.worker_max_batch and not self._stop.is_set():
                    left_ms = int((fill_until - loop.time()) * 1000)
                    if left_ms < 1:
                        break
                    batch += await self.transport.fetch(
                        label, self.worker_id, settings.worker_max_batch - len(batch), left_ms
                    )
                await self._serve_batch(label, batch)
            except Exception:
                # Redis gone for longer than the reconnect window, or a bug: keep serving;
                # unacknowledged entries are reclaimed, nothing is lost.
                log.exception("worker %s: %s loop failed; retrying", self.worker_id, label)
                await self._sleep_unless_stopped(1.0)

    async def _serve_batch(self, label: str, batch: list[Delivery]) -> None:
        sampler = self.samplers.get(label)  # this batch's model, whatever reloads meanwhile
        version = getattr(sampler, "version", None)
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
        if to_sample:
            await self._sample_and_answer(label, sampler, version, list(to_sample.values()))
        self.batches_served += 1

    async def _fail(self, delivery: Delivery, code: ErrorCode, message: str) -> None:
        label = delivery.label
        self.metrics.requests.labels(label, "failed").inc()
        self.metrics.errors.labels(label, code.value).inc()
        result = GenerateResult.failure(delivery.request.request_id, code, message, self.worker_id)
        await self.transport.complete(delivery, result)

    async def _sample(self, sampler, groups: list[list[Delivery]]) -> list:
        jobs = [(g[0].request.seed, g[0].request.count) for g in groups]
        # All requests of a batch share one size: the largest asked for, each resized after.
        size = max(g[0].request.size for g in groups)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sampling_pool, sampler.sample_batch, jobs, size)

    async def _sample_and_answer(self, label, sampler, version, groups) -> None:
        started = time.time()
        try:
            images = await self._sample(sampler, groups)
        except Exception:
            log.exception("a %s batch of %d failed; sampling one by one", label, len(groups))
            await self._isolate_poison(label, sampler, version, groups)
            return
        sample_s = time.time() - started
        self.metrics.sample_seconds.labels(label).observe(sample_s)
        self.metrics.batch_size.labels(label).observe(len(groups))
        self.requests_sampled += len(groups)
        await asyncio.gather(
            *(
                self._encode_and_answer(group, pictures, version, started, sample_s, len(groups))
                for group, pictures in zip(groups, images, strict=True)
            )
        )

    async def _isolate_poison(self, label, sampler, version, groups) -> None:
        """Sample each request alone: the ones that still fail are dead-lettered."""
        for group in groups:
            started = time.time()
            try:
                [pictures] = await self._sample(sampler, [group])
            except Exception as error:
                reason = f"sampling failed: {type(error).__name__}: {error}"
                self.metrics.requests.labels(label, "failed").inc()
                self.metrics.errors.labels(label, ErrorCode.SAMPLING_FAILED.value).inc()
                for delivery in group:
                    failure = GenerateResult.failure(
                        delivery.request.request_id,
                        ErrorCode.SAMPLING_FAILED,
                        reason,
                        self.worker_id,
                    )
                    await self.transport.dead_letter(delivery, reason, failure, self.worker_id)
                continue
            await self._encode_and_answer(
                group, pictures, version, started, time.time() - started, 1
            )

    async def _encode_and_answer(self, group, pictures, version, started, sample_s, batch_size):
        request = group[0].request
        if request.size != pictures[0].width:
            pictures = [picture.resize((request.size, request.size)) for picture in pictures]
        loop = asyncio.get_running_loop()
        encode_started = time.time()
        pngs = await loop.run_in_executor(
            self._encoding_pool, encode_pngs, pictures, self.settings.worker_png_level
        )
        result = GenerateResult(
            request_id=request.request_id,
            images=pngs,
            model_version=version,
            worker_id=self.worker_id,
            timings=Timings(
                queued_ms=max(0.0, (started - request.created_at) * 1000),
                sample_ms=sample_s * 1000,
                encode_ms=(time.time() - encode_started) * 1000,
                batch_size=batch_size,
            ),
        )
        for delivery in group:
            await self.transport.complete(delivery, result)
        label = request.label
        self.metrics.requests.labels(label, "sampled").inc(len(group))
        self.metrics.latency.labels(label).observe(max(0.0, time.time() - request.created_at))

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
                samplers = await asyncio.to_thread(
                    load_samplers,
                    registry,
                    version,
                    self.labels,
                    self.settings.device,
                    self.settings.worker_shape_gate,
                )
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
        labels = self.labels
        try:
            samplers = await asyncio.to_thread(
                load_samplers,
                registry,
                version,
                labels,
                self.settings.device,
                self.settings.worker_shape_gate,
            )
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
        devices = {
            label: str(sampler.device)
            for label, sampler in self.samplers.items()
            if getattr(sampler, "device", None) is not None
        }
        return {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "labels": self.labels,
            "model_version": self.model_version,
            "models": {
                label: getattr(sampler, "version", None) for label, sampler in self.samplers.items()
            },
            # What the models really run on ("auto" resolved), else what was asked for.
            "device": ", ".join(sorted(set(devices.values()))) or str(self.settings.device),
            "max_batch": self.settings.worker_max_batch,
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
