"""Operator actions over the whole fleet: status, promote, rollback, retrain, discard.

These change what every server gets, so only the bot's operators reach them (the checks
live in `bot.cogs.admin`). Their dependencies are explicit: the model registry, the
retrain queue (`worker.retraining.RetrainQueue`, which owns its Redis connection) and
the worker client for the fleet's queue depth and heartbeats; None of the first two
means "not configured here", answered with a refusal rather than a crash.
"""

import asyncio
import contextlib
import math

from bot.core import Refusal, RefusalKind
from bot.state import BotState
from moodmoji.errors import MoodmojiError
from worker import LABELS, ModelRegistry, WorkerClient
from worker.retraining import RetrainEvent, RetrainQueue, RetrainRequest, promote_checked


class Operations:
    def __init__(
        self,
        client: WorkerClient,
        state: BotState,
        registry: ModelRegistry,
        retrain_queue: RetrainQueue | None = None,
        *,
        registry_poll_s: float = 5.0,
    ) -> None:
        self.client = client
        self.state = state
        self.registry = registry
        self.retrain_queue = retrain_queue
        self.registry_poll_s = registry_poll_s

    async def status(self) -> str:
        """Queue depth, workers alive, model versions and latency, as a few lines."""
        depths = {label: await self.client.queue_depth(label) for label in LABELS}
        beats = await self.client.workers()
        latencies = sorted(await self.state.latencies())
        active = "unknown"
        with contextlib.suppress(Exception):  # a missing registry folder is not an outage
            active = await asyncio.to_thread(self.registry.active_version)
        lines = [
            "**queue** " + " · ".join(f"{label} {depth}" for label, depth in depths.items()),
            f"**workers alive** {len(beats)}",
        ]
        for worker_id, info in sorted(beats.items()):
            models = ", ".join(f"{k} {v}" for k, v in sorted((info.get("models") or {}).items()))
            lines.append(f"- `{worker_id}` model `{info.get('model_version')}` ({models})")
        lines.append(f"**active version** `{active}`")
        if latencies:
            p50 = latencies[len(latencies) // 2]
            p95 = latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.95) - 1)]
            lines.append(
                f"**latency** p50 {p50 * 1000:.0f} ms · p95 {p95 * 1000:.0f} ms "
                f"(last {len(latencies)})"
            )
        else:
            lines.append("**latency** no requests yet")
        return "\n".join(lines)

    async def promote(self, version: str, force: bool = False) -> str | Refusal:
        """Make `version` live unless its FID/KID is worse than the live one's (or `force`)."""
        try:
            verdict, previous = await asyncio.to_thread(
                promote_checked, self.registry, version, force
            )
        except MoodmojiError as error:  # RegistryError: unknown or malformed version
            return Refusal(RefusalKind.NO_SUCH_VERSION, str(error))
        if not verdict.allowed:
            return Refusal(RefusalKind.WORSE_MODEL, f"Not promoted: {verdict.reason}.")
        return (
            f"`{version}` is live (was `{previous}`; {verdict.reason}); workers switch within "
            f"{self.registry_poll_s:g} s."
        )

    async def rollback(self) -> str | Refusal:
        try:
            current, previous = await asyncio.to_thread(self.registry.rollback)
        except MoodmojiError as error:  # RegistryError
            return Refusal(RefusalKind.NO_SUCH_VERSION, f"Nothing to roll back: {error}.")
        return f"Rolled back to `{previous}` (from `{current}`)."

    async def discard(self, version: str) -> str | Refusal:
        """Mark a version discarded; it stays in the registry (versions are never deleted)."""
        try:
            await asyncio.to_thread(self.registry.discard, version)
        except MoodmojiError as error:
            return Refusal(RefusalKind.NO_SUCH_VERSION, str(error))
        return f"`{version}` discarded; it stays in the registry but will not go live."

    async def version_file(self, version: str, name: str) -> bytes | None:
        """A file published with a version (its sample grid), or None."""
        try:
            path = self.registry.version_dir(version) / name
        except MoodmojiError:
            return None
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    # --- retraining ---------------------------------------------------------------

    async def retrain(
        self,
        upload: bytes,
        *,
        requested_by: str,
        from_version: str | None = None,
        labels: list[str] | None = None,
    ) -> RetrainRequest | Refusal:
        """Queue a retrain of `upload` (a zip) for a retrain runner."""
        if self.retrain_queue is None:
            return Refusal(RefusalKind.NO_QUEUE, "Retraining needs the Redis queue and a runner.")
        try:
            return await self.retrain_queue.submit(
                upload,
                requested_by=requested_by,
                from_version=from_version,
                labels=labels or list(LABELS),
            )
        except MoodmojiError as error:
            return Refusal(RefusalKind.BAD_UPLOAD, str(error))

    async def retrain_events(
        self, request_id: str, after: str = "0-0", block_ms: int = 1000
    ) -> list[tuple[str, RetrainEvent]]:
        if self.retrain_queue is None:
            return []
        return await self.retrain_queue.events(request_id, after, block_ms)
