"""Figures like the paper's: loss curves (Fig. 2), metric curves (Fig. 3), sample grids (Fig. 4)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
from PIL import Image

METRIC_TITLES = {
    "fid": "FID (lower is better)",
    "kid": "KID (lower is better)",
    "domain_is": "domain IS (higher is better)",
    "class_consistency": "class consistency",
}


def plot_losses(runs: dict[str, list[dict]], out: Path | str) -> Path:
    """One panel per run: D and G loss per epoch."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.4), squeeze=False)
    for ax, (name, records) in zip(axes[0], runs.items(), strict=True):
        epochs = [r["epoch"] for r in records]
        ax.plot(epochs, [r["loss_d"] for r in records], label="D loss", color="tab:red")
        ax.plot(epochs, [r["loss_g"] for r in records], label="G loss", color="tab:blue")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out)


def plot_metrics(runs: dict[str, list[dict]], out: Path | str) -> Path:
    """One panel per metric found in the logs, one line per run."""
    names = [m for m in METRIC_TITLES if any(m in r for recs in runs.values() for r in recs)]
    if not names:
        from moodmoji.errors import MoodmojiError

        raise MoodmojiError("these logs hold no metrics; train with --eval-every N to record them")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], names, strict=True):
        for run, records in runs.items():
            points = [(r["epoch"], r[metric]) for r in records if metric in r]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=run)
        ax.set_title(METRIC_TITLES[metric])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


# Discord's chat backgrounds: an emoji must look right on both.
THEMES = {"light": (255, 255, 255), "dark": (49, 51, 56)}


def make_grid(
    images: list[Image.Image], columns: int = 8, pad: int = 2, background=THEMES["light"]
) -> Image.Image:
    """Tile equally sized images on `background`, `columns` per row; alpha shows it through."""
    if not images:
        raise ValueError("no images to tile")
    w, h = images[0].size
    rows = -(-len(images) // columns)
    cols = min(columns, len(images))
    grid = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), background)
    for i, img in enumerate(images):
        mask = img if img.mode == "RGBA" else None
        grid.paste(img, (pad + (i % columns) * (w + pad), pad + (i // columns) * (h + pad)), mask)
    return grid


def theme_sheet(images: list[Image.Image], columns: int = 8) -> Image.Image:
    """The grid on Discord's light theme above the same grid on its dark theme."""
    grids = [make_grid(images, columns, background=colour) for colour in THEMES.values()]
    sheet = Image.new("RGB", (grids[0].width, sum(g.height for g in grids)))
    for i, grid in enumerate(grids):
        sheet.paste(grid, (0, i * grids[0].height))
    return sheet


def save_grid(images: list[Image.Image], out: Path | str, columns: int = 8) -> Path:
    """A `theme_sheet` PNG: an opaque emoji shows its box on the dark half."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    theme_sheet(images, columns).save(out)
    return out


def _save(fig, out: Path | str) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
