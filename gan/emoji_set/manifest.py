"""The set's `manifest.csv`: one row per image with its provenance; and the split helper.

A row says which file, which emoji (code point and CLDR name), which art style
and package it came from under which licence, its label, how that label was
decided (the ranking, the Unicode sub-group, or an operator's import) and the
ranking score, and a hash of its pixels that `dataset import` uses to drop
duplicates.
"""

import csv
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from moodmoji.errors import MoodmojiError

MANIFEST_NAME = "manifest.csv"
HOW_IMPORT = "import"


@dataclass(frozen=True)
class ManifestRow:
    file: str  # relative to the set folder: "positive/noto__1f600.png"
    codepoint: str  # codepoint_key(); empty for imported images
    name: str  # CLDR name; for an imported image, its name in the source
    style: str  # art style, or "import"
    label: str  # "positive" or "negative"
    how_labelled: str  # "ranking", "subgroup" or "import"
    score: str  # ranking score to 3 decimals; empty where the ranking did not decide
    package: str  # npm package, or the imported folder / zip
    version: str
    licence: str  # SPDX id as the package declares it
    source: str  # icon name or image path inside the package or import
    sha256: str  # images.pixel_hash()

    @property
    def group(self) -> str:
        """What must stay on one side of a split: the emoji, or the file itself for imports."""
        return self.codepoint or f"file:{self.file}"


COLUMNS = tuple(field.name for field in fields(ManifestRow))


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r.file):
            writer.writerow(asdict(row))


def read_manifest(path: Path) -> list[ManifestRow]:
    """The rows of a manifest file, or of `<folder>/manifest.csv` given the set folder."""
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise MoodmojiError(
            f"no emoji set manifest at {path}; build one with `moodmoji dataset build`"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise MoodmojiError(f"{path} is not an emoji set manifest: no {', '.join(missing)}")
        return [ManifestRow(**{column: row[column] for column in COLUMNS}) for row in reader]


def split_by_codepoint(
    rows: Sequence[ManifestRow], test_fraction: float, seed: int = 0
) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, test) with every image of one emoji, in all its styles, on the same side.

    The split is drawn per label, so each side keeps both labels: of each label's
    emojis, round(test_fraction * count) (at least one when the label has two or
    more) go to test. Imported images each count as an emoji of their own.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, not {test_fraction}")
    groups_by_label: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        groups_by_label[row.label].add(row.group)
    rng = random.Random(seed)
    test_groups: set[str] = set()
    for label in sorted(groups_by_label):
        groups = sorted(groups_by_label[label])
        rng.shuffle(groups)
        count = round(test_fraction * len(groups))
        if len(groups) >= 2:
            count = min(max(count, 1), len(groups) - 1)
        test_groups.update(groups[:count])
    train = [row for row in rows if row.group not in test_groups]
    test = [row for row in rows if row.group in test_groups]
    return train, test
