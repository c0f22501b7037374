"""Pillow-only image helpers shared by the loader and the data set builder (no torch here)."""

from PIL import Image

IMAGE_SIZE = 64
WHITE = (255, 255, 255)


def resize_rgba(image: Image.Image, size: int) -> Image.Image:
    """Lanczos resize of an RGBA image with premultiplied alpha.

    Resizing straight RGBA mixes the (meaningless) colour of transparent pixels
    into the edge, which leaves a dark or coloured fringe around the emoji.
    """
    if image.size == (size, size):
        return image
    premultiplied = image.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS)
    return premultiplied.convert("RGBA")


def to_rgba_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Pad to a centred transparent square and resize to `size` x `size` RGBA (Lanczos).

    An image without transparency (a JPEG, say) stays opaque.
    """
    rgba = image.convert("RGBA")
    side = max(rgba.size)
    if rgba.size != (side, side):
        square = Image.new("RGBA", (side, side), (*WHITE, 0))
        square.paste(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
        rgba = square
    return resize_rgba(rgba, size)


def on_white(image: Image.Image) -> Image.Image:
    """An image composited on white, RGB: how the emojis were drawn to be seen."""
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*WHITE, 255)), rgba).convert("RGB")


def to_rgb_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """`to_rgba_square`, composited on white."""
    return on_white(to_rgba_square(image, size))
