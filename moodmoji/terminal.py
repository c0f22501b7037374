"""Pictures in a terminal: two pixels per character cell with the upper half block."""

import io

from PIL import Image

_RESET = "\x1b[0m"


def half_blocks(png: bytes, width: int = 32, background=(24, 24, 24)) -> str:
    """`png` as `width` columns of 24-bit coloured '▀' (top pixel foreground, bottom background).

    Transparent pixels blend into `background`, a dark terminal's colour.
    """
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    height = max(2, round(image.height * width / image.width / 2) * 2)
    small = image.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", small.size, (*background, 255))
    pixels = Image.alpha_composite(canvas, small).convert("RGB").load()
    lines = []
    for y in range(0, height, 2):
        cells = []
        for x in range(width):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            cells.append(
                f"\x1b[38;2;{top[0]};{top[1]};{top[2]}m\x1b[48;2;{bottom[0]};{bottom[1]};{bottom[2]}m▀"
            )
        lines.append("".join(cells) + _RESET)
    return "\n".join(lines)
