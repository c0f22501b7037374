"""`moodmoji demo "text"`: the whole path on one machine, no Redis.

Message -> sentiment -> in-process queue -> sampling service -> PNG, printed as
coloured half-block characters so it shows in any true-colour terminal.
"""

import asyncio
import hashlib
from pathlib import Path

from moodmoji.errors import MoodmojiError
from worker.protocol import LABELS
from worker.settings import WorkerSettings

UPPER_HALF_BLOCK = "\u2580"


def seed_for(text: str) -> int:
    """The same message always draws the same emoji."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def mood_to_label(prediction) -> tuple[str, str]:
    """(GAN label, how the mood reads): the GAN draws only positive and negative faces."""
    if prediction.label in LABELS:
        return prediction.label, f"{prediction.label} ({prediction.confidence:.0%})"
    leaning = max(LABELS, key=lambda label: prediction.scores.get(label, 0.0))
    return leaning, f"{prediction.label} ({prediction.confidence:.0%}), leaning {leaning}"


def half_blocks(png: bytes, width: int = 32) -> str:
    """The image as rows of '▀' with 24-bit colours: top pixel in front, bottom behind."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").resize((width, width + width % 2))
    pixels = image.load()
    rows = []
    for y in range(0, image.height, 2):
        cells = []
        for x in range(image.width):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            cells.append(
                f"\x1b[38;2;{top[0]};{top[1]};{top[2]}m"
                f"\x1b[48;2;{bottom[0]};{bottom[1]};{bottom[2]}m{UPPER_HALF_BLOCK}"
            )
        rows.append("".join(cells) + "\x1b[0m")
    return "\n".join(rows)


async def generate_locally(settings: WorkerSettings, label: str, seed: int, size: int):
    """One emoji through the embedded queue and service, as a bot would get it."""
    from worker.cli import make_registry
    from worker.client import WorkerClient
    from worker.service import SamplingService
    from worker.transport import InProcessTransport

    transport = InProcessTransport()
    service = SamplingService(transport, settings, registry=make_registry(settings), labels=[label])
    running = asyncio.create_task(service.run())
    try:
        ready = asyncio.create_task(service.wait_ready())
        await asyncio.wait({ready, running}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # raises what stopped the service
        async with WorkerClient(transport, settings) as client:
            return await client.generate(label, seed=seed, size=size)
    finally:
        service.request_stop()
        await asyncio.gather(running, return_exceptions=True)


def run_demo(
    text: str, out: Path, seed: int | None, size: int, show: bool, settings: WorkerSettings
) -> int:
    if not text.strip():
        raise MoodmojiError('give a message, for example: moodmoji demo "what a lovely day"')
    from worker.cli import make_registry

    registry = make_registry(settings)
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
