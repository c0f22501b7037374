"""Image normalisation shared by the art renderer and `dataset import`.

Every image in the set is a 64x64 RGBA PNG that keeps the art's transparency
(padded to a transparent square, resized with premultiplied alpha), so that
the GAN loader (which does the same to any image) sees exactly these pixels,
and so that a content hash of the pixels finds duplicates whatever their
encoding.
"""

import hashlib
from pathlib import Path

from PIL import Image

from gan.images import (
    IMAGE_SIZE,
    WHITE,
    cut_out_flat_background,
    fill_enclosed,
    to_rgba_square,
)

__all__ = [
    "IMAGE_SIZE",
    "WHITE",
    "cut_out_flat_background",
    "fill_enclosed",
    "pixel_hash",
    "save_png",
    "to_rgba_square",
]


def pixel_hash(image: Image.Image) -> str:
    """sha256 of the premultiplied RGBA pixels: the same picture hashes alike as PNG, WebP
    or re-saves, whatever colour its fully transparent pixels happen to store."""
    premultiplied = image.convert("RGBA").convert("RGBa")
    header = f"{premultiplied.width}x{premultiplied.height}:".encode()
    return hashlib.sha256(header + premultiplied.tobytes()).hexdigest()


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
