"""`moodmoji dataset show`: counts per label and style, and a contact sheet to eyeball labels."""

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gan.emoji_set.labels import LABELS
from gan.emoji_set.manifest import ManifestRow

SHEET_NAME = "contact_sheet.png"


def count_table(rows: Sequence[ManifestRow]) -> str:
    """A plain-text table: one line per style, a column per label, totals last."""
    counts = Counter((row.style, row.label) for row in rows)
    styles = sorted({row.style for row in rows})
    width = max([len("style"), len("total"), *map(len, styles)])
    header = f"{'style':<{width}}" + "".join(f"{label:>10}" for label in LABELS) + f"{'total':>8}"
    lines = [header, "-" * len(header)]
    for style in styles:
        cells = [counts[style, label] for label in LABELS]
        lines.append(f"{style:<{width}}" + "".join(f"{c:>10}" for c in cells) + f"{sum(cells):>8}")
    totals = [sum(counts[style, label] for style in styles) for label in LABELS]
    lines += ["-" * len(header)]
    lines.append(f"{'total':<{width}}" + "".join(f"{t:>10}" for t in totals) + f"{sum(totals):>8}")
    return "\n".join(lines)


def contact_sheet(
    set_dir: Path,
    rows: Sequence[ManifestRow],
    out_path: Path,
    per_label: int = 96,
    columns: int = 12,
    seed: int = 0,
) -> Path:
    """One panel per label of up to `per_label` images drawn with `seed`, grouped by emoji."""
    font = ImageFont.load_default()
    cell, gap, header_height = 64, 2, 18
    panels = []
    for label in LABELS:
        pool = [row for row in rows if row.label == label]
        drawn = random.Random(seed).sample(pool, min(per_label, len(pool)))
        drawn.sort(key=lambda row: (row.codepoint, row.style, row.file))
        grid_rows = max(1, -(-len(drawn) // columns))
        panel = Image.new(
            "RGB",
            (columns * (cell + gap) + gap, header_height + grid_rows * (cell + gap) + gap),
            (235, 235, 235),
        )
        draw = ImageDraw.Draw(panel)
        draw.text((gap + 2, 3), f"{label}: {len(drawn)} of {len(pool)}", fill=(0, 0, 0), font=font)
        for index, row in enumerate(drawn):
            with Image.open(set_dir / row.file) as image:
                thumb = image.convert("RGBA").resize((cell, cell))
            x = gap + (index % columns) * (cell + gap)
            y = header_height + gap + (index // columns) * (cell + gap)
            panel.paste(thumb, (x, y), thumb)  # the alpha shows the panel behind it
        panels.append(panel)
    sheet = Image.new("RGB", (panels[0].width, sum(p.height for p in panels)), (255, 255, 255))
    y = 0
    for panel in panels:
        sheet.paste(panel, (0, y))
        y += panel.height
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path, format="PNG", optimize=True)
    return out_path
