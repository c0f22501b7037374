"""Image folders in, (N, C, 64, 64) tensors in [-1, 1] out; and a procedural test set.

A data folder holds one sub-folder per label (`positive/`, `negative/`) of
images of any size and format Pillow reads. Non-square ones are padded to a
transparent square and all are resized to 64x64 with Lanczos filtering. They
load as RGBA (C = 4, straight alpha, scaled to [-1, 1] like the colours) for
models that draw transparency, or composited on white (C = 3), as the metrics
and the RGB models see them. `composite` is the one place a tensor's alpha is
flattened onto a background.
"""

import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from torch import Tensor

from gan.images import IMAGE_SIZE, WHITE, resize_rgba, to_rgba_square
from moodmoji.errors import MoodmojiError

LABELS = ("positive", "negative")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}


class DataError(MoodmojiError):
    """A data folder that cannot be used as it is."""


def images_to_tensor(images: list[Image.Image]) -> Tensor:
    """PIL RGB or RGBA images (all one mode) to a (N, 3 or 4, H, W) float tensor in [-1, 1]."""
    arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])  # (N, H, W, C)
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(batch: Tensor, size: int | None = None) -> list[Image.Image]:
    """(N, 3 or 4, H, W) in [-1, 1] to PIL RGB or RGBA images, optionally upscaled to `size`."""
    arrays = (
        (batch.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1))
        .cpu()
        .numpy()
    )
    mode = "RGBA" if batch.shape[1] == 4 else "RGB"
    images = [Image.fromarray(a, mode) for a in arrays]
    if size is not None and images and images[0].size != (size, size):
        # Lanczos keeps the edges of an upscaled emoji crisp without blocky pixels.
        if mode == "RGBA":
            images = [resize_rgba(img, size) for img in images]
        else:
            images = [img.resize((size, size), Image.Resampling.LANCZOS) for img in images]
    return images


def composite(batch: Tensor, background: Tensor | None = None) -> Tensor:
    """(N, 4, H, W) RGBA in [-1, 1] over a background, to (N, 3, H, W); RGB passes through.

    `background`: (N, 3) or (3,) colours in [-1, 1]; white by default. Straight
    alpha: a transparent pixel's colour does not matter, and gets no gradient.
    """
    if batch.shape[1] == 3:
        return batch
    if background is None:
        background = torch.tensor(WHITE, dtype=batch.dtype, device=batch.device) / 127.5 - 1.0
    background = background.reshape(-1, 3, 1, 1)
    alpha = batch[:, 3:].add(1).mul(0.5)
    return batch[:, :3] * alpha + background * (1.0 - alpha)


def random_backgrounds(n: int, device: torch.device | str = "cpu") -> Tensor:
    """(n, 3) uniform random colours in [-1, 1], from torch's global RNG.

    Showing D each emoji on a random colour makes alpha the only way to look
    right on all of them: a halo, a box or a see-through face shows on some.
    """
    return torch.rand(n, 3, device=device) * 2.0 - 1.0


def label_folder(root: Path | str, label: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    folder = root / label
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"label folder {folder} is missing: a data folder needs one sub-folder per label "
            f"({', '.join(LABELS)}); found {', '.join(present) or 'none'}"
        )
    return folder


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_label_images(
    root: Path | str, label: str, size: int = IMAGE_SIZE, alpha: bool = False
) -> Tensor:
    """All images of one label as a (N, 4, size, size) RGBA tensor in [-1, 1] with `alpha`,
    else (N, 3, size, size) composited on white."""
    folder = label_folder(root, label)
    files = image_files(folder)
    if not files:
        raise DataError(
            f"label folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    images, corrupt = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                images.append(to_rgba_square(img, size))
        except (UnidentifiedImageError, OSError, ValueError):
            corrupt.append(path.name)
    if corrupt:
        shown = ", ".join(corrupt[:3]) + (
            f" and {len(corrupt) - 3} more" if len(corrupt) > 3 else ""
        )
        raise DataError(
            f"{len(corrupt)} unreadable image(s) in {folder}: {shown}; remove or fix them"
        )
    rgba = images_to_tensor(images)
    return rgba if alpha else composite(rgba)


def random_flip(batch: Tensor) -> Tensor:
    """Mirror a random half of the batch left-right (uses torch's global RNG)."""
    flip = torch.rand(batch.shape[0], device=batch.device) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)


# --- A procedural data set: smiley faces, so tests never need downloads. -----------------


def draw_face(label: str, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """A round face on a transparent background (RGBA) whose mouth curves up (positive) or
    down (negative), with random style."""
    scale = 4  # draw large, then downsample for smooth edges
    s = size * scale
    img = Image.new("RGBA", (s, s), (*WHITE, 0))
    draw = ImageDraw.Draw(img)
    radius = s * rng.uniform(0.38, 0.46)
    cx, cy = s / 2 + rng.uniform(-0.03, 0.03) * s, s / 2 + rng.uniform(-0.03, 0.03) * s
    face = (rng.randint(230, 255), rng.randint(170, 220), rng.randint(0, 80))
    draw.ellipse(
        [cx - radius, cy - radius, cx + radius, cy + radius],
        fill=face,
        outline=(120, 80, 0),
        width=scale * 2,
    )
    eye_dx, eye_y = radius * rng.uniform(0.3, 0.42), cy - radius * rng.uniform(0.2, 0.35)
    eye_r = radius * rng.uniform(0.08, 0.14)
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse(
            [ex - eye_r, eye_y - eye_r * 1.3, ex + eye_r, eye_y + eye_r * 1.3], fill=(60, 40, 20)
        )
    mouth_w, mouth_y = radius * rng.uniform(0.45, 0.65), cy + radius * rng.uniform(0.3, 0.45)
    curve = radius * rng.uniform(0.15, 0.3) * (1 if label == "positive" else -1)
    points = [
        (cx + mouth_w * t, mouth_y + curve * (1 - t * t) - (curve if curve < 0 else 0))
        for t in np.linspace(-1, 1, 24)
    ]
    draw.line(points, fill=(90, 30, 20), width=int(scale * rng.uniform(2, 4)), joint="curve")
    if label == "negative" and rng.random() < 0.5:  # a tear
        tx = cx + eye_dx * rng.choice((-1, 1))
        draw.ellipse(
            [tx - eye_r * 0.7, eye_y + eye_r * 2, tx + eye_r * 0.7, eye_y + eye_r * 4],
            fill=(90, 160, 240),
        )
    angle = rng.uniform(-12, 12)
    # Rotated premultiplied, so the transparent corners add no fringe.
    img = img.convert("RGBa").rotate(angle, resample=Image.Resampling.BICUBIC).convert("RGBA")
    return resize_rgba(img, size)


def make_procedural_dataset(root: Path | str, per_label: int = 32, seed: int = 0) -> Path:
    """Write `per_label` smiley PNGs into root/positive and root/negative; returns root."""
    root = Path(root)
    rng = random.Random(seed)
    for label in LABELS:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        digits = max(3, math.ceil(math.log10(per_label + 1)))
        for i in range(per_label):
            draw_face(label, rng).save(folder / f"{label}-{i:0{digits}d}.png")
    return root
