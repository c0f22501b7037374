"""A sampling service inside the caller's process: `moodmoji demo`, `moodmoji chat`, tests.

Torch loads only when the service loads its models, so importing this is cheap.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from worker.protocol import LABELS
from worker.registry import registry_from_settings
from worker.service import SamplingService
from worker.settings import WorkerSettings
from worker.transport import Transport


@contextlib.asynccontextmanager
async def embedded_worker(
    transport: Transport,
    settings: WorkerSettings,
    samplers: dict | None = None,
    labels: list[str] | None = None,
    worker_id: str = "embedded",
) -> AsyncIterator[SamplingService]:
    """Serve `transport` from this process until the block ends.

    Models come from the registry the settings name (the shipped `models/` when there is
    none), or from `samplers` ({label: EmojiSampler}). A missing checkpoint is one
    clear error before anything starts.
    """
    labels = list(labels or LABELS)
    if samplers is None:
        registry = registry_from_settings(settings)
        version = registry.active_version()
        for label in labels:
            registry.checkpoint_path(label, version)  # RegistryError: one line, not a traceback
        service = SamplingService(
            transport, settings, registry=registry, labels=labels, worker_id=worker_id
        )
    else:
        service = SamplingService(
            transport, settings, samplers=samplers, labels=labels, worker_id=worker_id
        )
    running = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.wait_ready())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        ready.cancel()
        running.result()  # raises why it could not start
    try:
        yield service
    finally:
        service.request_stop()
        await running
