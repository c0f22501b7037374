"""Image normalisation shared by the art renderer and `dataset import`.

Every image in the set is a 64x64 RGB PNG composited on white, so that the
GAN loader (which does the same to any image) sees exactly these pixels, and
so that a content hash of the pixels finds duplicates whatever their encoding.
"""

import hashlib
from pathlib import Path

from PIL import Image

from gan.images import IMAGE_SIZE, WHITE, to_rgb_square

__all__ = ["IMAGE_SIZE", "WHITE", "pixel_hash", "save_png", "to_rgb_square"]


def pixel_hash(image: Image.Image) -> str:
    """sha256 of the RGB pixels: the same picture hashes alike as PNG, JPEG-free re-saves, etc."""
    rgb = image.convert("RGB")
    header = f"{rgb.width}x{rgb.height}:".encode()
    return hashlib.sha256(header + rgb.tobytes()).hexdigest()


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
