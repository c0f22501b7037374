"""Pillow-only image helpers shared by the loader and the data set builder (no torch here)."""

from PIL import Image

IMAGE_SIZE = 64
WHITE = (255, 255, 255)


def to_rgb_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Composite on white, pad to a centred square, resize to `size` x `size` RGB (Lanczos).

    Emojis are drawn for light backgrounds, so transparency becomes white.
    """
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
