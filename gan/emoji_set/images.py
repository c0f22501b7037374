"""Image normalisation shared by the art renderer and `dataset import`.

Every image in the set is a 64x64 RGB PNG composited on white, so that the
GAN loader (which does the same to any image) sees exactly these pixels, and
so that a content hash of the pixels finds duplicates whatever their encoding.
"""

import hashlib
from pathlib import Path

from PIL import Image

IMAGE_SIZE = 64
WHITE = (255, 255, 255)


def to_rgb_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Composite on white, pad to a centred square, resize to `size` x `size` RGB (Lanczos)."""
    rgba = image.convert("RGBA")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (*WHITE, 255)), rgba).convert("RGB")
    side = max(rgb.size)
    if rgb.size != (side, side):
        square = Image.new("RGB", (side, side), WHITE)
        square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
        rgb = square
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb


def pixel_hash(image: Image.Image) -> str:
    """sha256 of the RGB pixels: the same picture hashes alike as PNG, JPEG-free re-saves, etc."""
    rgb = image.convert("RGB")
    header = f"{rgb.width}x{rgb.height}:".encode()
    return hashlib.sha256(header + rgb.tobytes()).hexdigest()


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
