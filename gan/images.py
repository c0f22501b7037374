"""Image helpers shared by the loader and the data set builder (Pillow and numpy; no torch)."""

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


def cut_out_flat_background(
    image: Image.Image, tolerance: float = 24.0, edge: float = 96.0
) -> Image.Image:
    """An opaque image drawn on a flat colour (an emoji saved as JPEG on white, say) as RGBA
    with that background made transparent; anything else is returned as it is.

    The background is the colour of the border, if at least 90% of the border is within
    `tolerance` of it (RGB distance). Only the background region connected to the border
    is cut, so a face's white eyes stay. The one-pixel rim around the cut gets partial
    alpha from its distance to the background (full at `edge`), and its colour is
    un-mixed from the background, so the emoji has no light halo on a dark theme.
    """
    import numpy as np
    from scipy import ndimage

    rgba = image.convert("RGBA")
    pixels = np.asarray(rgba).astype(np.float64)
    if pixels[..., 3].min() < 255:
        return rgba  # it has its own transparency
    rgb = pixels[..., :3]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    if (np.linalg.norm(border - background, axis=1) <= tolerance).mean() < 0.9:
        return rgba  # no flat background: a photo, or art that fills the frame
    distance = np.linalg.norm(rgb - background, axis=2)
    labels, _ = ndimage.label(distance <= tolerance)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    cut = np.isin(labels, edge_labels[edge_labels > 0])
    if cut.mean() > 0.95:
        return rgba  # all background: nothing would be left
    rim = ndimage.binary_dilation(cut) & ~cut
    alpha = np.where(cut, 0.0, 1.0)
    alpha[rim] = np.clip(distance[rim] / edge, 0.0, 1.0)
    # c = a * f + (1 - a) * bg  =>  f = (c - (1 - a) * bg) / a, on the rim.
    safe = np.maximum(alpha, 1e-3)[..., None]
    unmixed = np.clip((rgb - (1.0 - alpha[..., None]) * background) / safe, 0, 255)
    out = np.dstack([np.where(rim[..., None], unmixed, rgb), alpha * 255.0])
    return Image.fromarray(np.round(out).astype(np.uint8), "RGBA")


def fill_enclosed(image: Image.Image, colour=WHITE) -> Image.Image:
    """Line art with its enclosed transparent areas filled with `colour` (white).

    Monochrome emoji glyphs are lines on transparency, made to be tinted: a black
    face whose inside is see-through all but vanishes on a dark chat theme. Filled
    like a sticker (only what the outline encloses, not the outside), it reads on
    both themes, as it did on white.
    """
    import numpy as np
    from scipy import ndimage

    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    labels, _ = ndimage.label(alpha < 128)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    outside = np.isin(labels, border[border > 0])
    # Grow the outside by a pixel so the outline's anti-aliased outer edge stays soft.
    inside = ~ndimage.binary_dilation(outside)
    filled = Image.alpha_composite(Image.new("RGBA", rgba.size, (*colour, 255)), rgba)
    mask = Image.fromarray((inside * 255).astype(np.uint8), "L")
    return Image.composite(filled, rgba, mask)
