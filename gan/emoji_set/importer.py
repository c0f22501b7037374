"""`moodmoji dataset import`: an operator's own images, added to the set with provenance.

The source is a folder or a zip. An image's label is the `positive` or
`negative` folder it lies under (at any depth, so `faces.zip:faces/positive/a.png`
works). Each image is opened and fully decoded; corrupt files and files of the
wrong type or size are reported by name and skipped; the rest are normalised
like the built images (64x64 RGBA, transparency kept; an opaque image on a flat
background gets that background cut out), and any whose pixels the set
already holds, or that appear twice in the source, are dropped as duplicates.
The updated set is written beside the old one and swapped in, like a build.

A zip is checked as a whole before anything in it is read (`ZipLimits`): too many
entries, too many bytes once unpacked, a suspicious compression ratio (a zip bomb),
names that climb out of the archive (`../`, absolute paths, drive letters) and
symbolic links refuse the whole upload with one clear error. Entries are only ever
read into memory, never extracted under their own names.
"""

import io
import shutil
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gan.emoji_set.build import ATTRIBUTION_NAME
from gan.emoji_set.images import (
    IMAGE_SIZE,
    cut_out_flat_background,
    pixel_hash,
    save_png,
    to_rgba_square,
)
from gan.emoji_set.labels import LABELS
from gan.emoji_set.manifest import (
    HOW_IMPORT,
    MANIFEST_NAME,
    ManifestRow,
    read_manifest,
    write_manifest,
)
from gan.emoji_set.output import replacing_folder
from moodmoji.errors import MoodmojiError

IMPORT_STYLE = "import"
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded zip may hold; anything past these refuses the whole zip."""

    max_entries: int = 5_000
    max_total_bytes: int = 200 * 1024 * 1024  # uncompressed, all entries together
    max_entry_bytes: int = 20 * 1024 * 1024  # uncompressed, one entry
    max_ratio: float = 200.0  # uncompressed / compressed, per entry and overall


class UnsafeZipError(MoodmojiError):
    """A zip refused as a whole: a bomb, path traversal, links, or too large."""


def _unsafe_name(name: str) -> bool:
    """True for names that would land outside a folder they were extracted into."""
    normalised = name.replace("\\", "/")
    parts = normalised.split("/")
    return (
        normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")  # C:/...
        or ".." in parts
        or "\x00" in name
    )


def check_zip(archive: zipfile.ZipFile, limits: ZipLimits) -> None:
    """Refuse the zip unless every entry is a plain file with a safe name within `limits`."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeZipError(
            f"the zip holds {len(entries)} entries; at most {limits.max_entries} are accepted"
        )
    total = compressed = 0
    for info in entries:
        if _unsafe_name(info.filename):
            raise UnsafeZipError(
                f"the zip entry {info.filename!r} points outside the archive; refused"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeZipError(f"the zip entry {info.filename!r} is a symbolic link; refused")
        if info.file_size > limits.max_entry_bytes:
            raise UnsafeZipError(
                f"the zip entry {info.filename!r} unpacks to {info.file_size} bytes; "
                f"at most {limits.max_entry_bytes} per file are accepted"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024 * 1024 and ratio > limits.max_ratio:
            raise UnsafeZipError(
                f"the zip entry {info.filename!r} is compressed {ratio:.0f}:1, "
                "like a zip bomb; refused"
            )
        total += info.file_size
        compressed += info.compress_size
    if total > limits.max_total_bytes:
        raise UnsafeZipError(
            f"the zip unpacks to {total} bytes; at most {limits.max_total_bytes} are accepted"
        )
    if total > 1024 * 1024 and total / max(compressed, 1) > limits.max_ratio:
        raise UnsafeZipError(
            f"the zip is compressed {total / max(compressed, 1):.0f}:1 overall, "
            "like a zip bomb; refused"
        )


@dataclass
class ImportReport:
    set_dir: Path
    added: Counter = field(default_factory=Counter)  # label -> images added
    duplicates: list[str] = field(default_factory=list)  # names in the source
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # wrong type or size
    unlabelled: list[str] = field(default_factory=list)  # not under positive/ or negative/


def _source_files(source: Path, limits: ZipLimits) -> Iterator[tuple[str, bytes]]:
    """(name inside the source, contents) for every file, hidden files left out."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            check_zip(archive, limits)
            for info in archive.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or any(p.startswith((".", "__MACOSX")) for p in parts):
                    continue
                yield info.filename, archive.read(info)
        return
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not any(p.startswith(".") for p in relative.parts):
            yield relative.as_posix(), path.read_bytes()


def _label_of(name: str) -> str | None:
    folders = [part.lower() for part in Path(name).parts[:-1]]
    return next((part for part in folders if part in LABELS), None)


class _TooLarge(ValueError):
    """An image whose header announces more pixels than we accept: never decoded."""


def _decode(data: bytes, max_side: int) -> Image.Image:
    """The fully decoded image; raises on anything Pillow cannot read to the last byte."""
    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()  # checksums and structure, without decoding pixels
        if max(probe.size) > max_side:  # checked before decoding: a tiny file can claim 50k x 50k
            raise _TooLarge(f"{probe.size[0]}x{probe.size[1]}")
    image = Image.open(io.BytesIO(data))
    image.load()  # decoding catches truncated pixel data that verify() lets through
    return image


def import_images(
    set_dir: Path,
    source: Path,
    licence: str = "unspecified",
    min_side: int = 32,
    max_side: int = 4096,
    size: int = IMAGE_SIZE,
    zip_limits: ZipLimits | None = None,
) -> ImportReport:
    """Add the labelled images of `source` (a folder or a zip) to the set in `set_dir`.

    Raises `UnsafeZipError` for a zip that is refused as a whole (see `ZipLimits`).
    """
    if not source.exists():
        raise MoodmojiError(f"nothing to import: {source} does not exist")
    if source.is_file() and not zipfile.is_zipfile(source):
        raise MoodmojiError(f"{source} is neither a folder nor a zip file")
    has_manifest = (set_dir / MANIFEST_NAME).is_file()
    if set_dir.exists() and any(set_dir.iterdir()) and not has_manifest:
        raise MoodmojiError(
            f"{set_dir} holds files but no {MANIFEST_NAME}: not an emoji set; "
            f"import into an emoji set folder or a new one"
        )
    existing = read_manifest(set_dir) if has_manifest else []
    known_pixels = {row.sha256 for row in existing}

    report = ImportReport(set_dir)
    side_rule = f"sides must lie between {min_side} and {max_side}"
    new_rows: list[ManifestRow] = []
    new_images: list[Image.Image] = []
    for name, data in _source_files(source, zip_limits or ZipLimits()):
        label = _label_of(name)
        if label is None:
            report.unlabelled.append(name)
            continue
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            report.rejected.append((name, "not an image file type"))
            continue
        try:
            image = _decode(data, max_side)
        except _TooLarge as error:
            report.rejected.append((name, f"{error}: {side_rule}"))
            continue
        except UnidentifiedImageError:
            report.corrupt.append((name, "not an image Pillow can read"))
            continue
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            report.corrupt.append((name, str(error) or type(error).__name__))
            continue
        if image.format not in IMAGE_FORMATS:
            report.rejected.append((name, f"format {image.format} is not accepted"))
            continue
        if min(image.size) < min_side:  # too large was refused by _decode, before decoding
            width, height = image.size
            report.rejected.append((name, f"{width}x{height}: {side_rule}"))
            continue
        # An emoji saved without transparency (on white, say) gets its background cut
        # out: the GAN draws RGBA, and a white box would teach it to draw boxes.
        normalised = to_rgba_square(cut_out_flat_background(image), size)
        digest = pixel_hash(normalised)
        if digest in known_pixels:
            report.duplicates.append(name)
            continue
        known_pixels.add(digest)
        new_images.append(normalised)
        new_rows.append(
            ManifestRow(
                file=f"{label}/{IMPORT_STYLE}__{digest[:16]}.png",
                codepoint="",
                name=Path(name).stem,
                style=IMPORT_STYLE,
                label=label,
                how_labelled=HOW_IMPORT,
                score="",
                package=source.name,
                version="",
                licence=licence,
                source=name,
                sha256=digest,
            )
        )
        report.added[label] += 1

    if new_rows:
        with replacing_folder(set_dir) as staging:
            if set_dir.exists():
                shutil.copytree(set_dir, staging, dirs_exist_ok=True)
            for label in LABELS:  # the GAN loader wants both folders, even if one is empty
                (staging / label).mkdir(exist_ok=True)
            for row, image in zip(new_rows, new_images, strict=True):
                save_png(image, staging / row.file)
            write_manifest([*existing, *new_rows], staging / MANIFEST_NAME)
            _note_attribution(staging / ATTRIBUTION_NAME, source.name, len(new_rows), licence)
    return report


def _note_attribution(path: Path, source_name: str, count: int, licence: str) -> None:
    text = path.read_text() if path.is_file() else "# Attribution\n"
    heading = "## Imported images"
    if heading not in text:
        text = text.rstrip() + f"\n\n{heading}\n\n"
    stamp = f"{datetime.now(UTC):%Y-%m-%d}"
    text = text.rstrip() + f"\n- `{source_name}` ({stamp}): {count} images, licence {licence}\n"
    path.write_text(text)
