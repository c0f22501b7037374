"""`moodmoji demo "text"`: the whole path on one machine, no Redis.

Message -> sentiment -> in-process queue -> sampling service -> PNG, printed as
coloured half-block characters so it shows in any true-colour terminal.
"""

import asyncio
import hashlib
from pathlib import Path

from moodmoji.errors import MoodmojiError
from moodmoji.terminal import half_blocks
from worker.client import WorkerClient
from worker.embedded import embedded_worker
from worker.protocol import LABELS
from worker.registry import registry_from_settings
from worker.settings import WorkerSettings
from worker.transport import InProcessTransport


def seed_for(text: str) -> int:
    """The same message always draws the same emoji."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def mood_to_label(prediction) -> tuple[str, str]:
    """(GAN label, how the mood reads): the GAN draws only positive and negative faces."""
    if prediction.label in LABELS:
        return prediction.label, f"{prediction.label} ({prediction.confidence:.0%})"
    leaning = prediction.leaning
    return leaning, f"{prediction.label} ({prediction.confidence:.0%}), leaning {leaning}"


async def generate_locally(settings: WorkerSettings, label: str, seed: int, size: int):
    """One emoji through the embedded queue and service, as a bot would get it."""
    async with (
        embedded_worker(InProcessTransport(), settings, labels=[label]) as service,
        WorkerClient(service.transport, settings) as client,
    ):
        return await client.generate(label, seed=seed, size=size)


def run_demo(
    text: str, out: Path, seed: int | None, size: int, show: bool, settings: WorkerSettings
) -> int:
    if not text.strip():
        raise MoodmojiError('give a message, for example: moodmoji demo "what a lovely day"')
    registry = registry_from_settings(settings)
    version = registry.active_version()
    for label in LABELS:
        registry.checkpoint_path(label, version)  # one clear line if a model is missing

    from sentiment import classify

    [prediction] = classify([text])
    label, mood = mood_to_label(prediction)
    result = asyncio.run(
        generate_locally(settings, label, seed_for(text) if seed is None else seed, size)
    )
    if not result.ok:
        raise MoodmojiError(f"the worker could not draw an emoji: {result.error_message}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.images[0])
    print(f"mood: {mood}")
    print(f"emoji: {out} ({label} GAN, model {result.model_version})")
    if show:
        print(half_blocks(result.images[0]))
    return 0
