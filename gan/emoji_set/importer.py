"""`moodmoji dataset import`: an operator's own images, added to the set with provenance.

The source is a folder or a zip. An image's label is the `positive` or
`negative` folder it lies under (at any depth, so `faces.zip:faces/positive/a.png`
works). Each image is opened and fully decoded; corrupt files and files of the
wrong type or size are reported by name and skipped; the rest are normalised
like the built images (64x64 RGBA, transparency kept; an opaque image on a flat
background gets that background cut out), and any whose pixels the set
already holds, or that appear twice in the source, are dropped as duplicates.
The updated set is written beside the old one and swapped in, like a build.

An import is bounded by what it really costs, not by what headers say (`ImportLimits`):
the bytes actually inflated (per file and in all), the number of files, the pixels
actually decoded and the CPU time spent. Past any of them the whole import is refused
with one line naming the file and the limit. A zip is first checked as a whole from its
directory: names that climb out of the archive (`../`, absolute paths, drive letters),
symbolic links, encrypted entries, compression other than stored or deflate, and sizes
or ratios that announce a zip bomb refuse it before anything is inflated; a zip whose
directory or data is damaged is refused when that shows. Entries are only ever read
into memory, a chunk at a time, never extracted under their own names. A folder is
read without following symbolic links (a link is left out and named) and only its
regular files are opened, so nothing outside it is read.
"""

import io
import os
import shutil
import stat
import time
import zipfile
import zlib
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
class ImportLimits:
    """What an import may cost; anything past these refuses the whole import."""

    max_entries: int = 5_000  # files in a zip or a folder
    max_total_bytes: int = 200 * 1024 * 1024  # inflated, all files together
    max_entry_bytes: int = 20 * 1024 * 1024  # inflated, one file
    max_ratio: float = 200.0  # inflated / compressed, per entry and overall
    max_pixels: int = 200_000_000  # decoded, all images together
    max_cpu_s: float = 120.0  # CPU time of the import's thread: inflating and decoding


class ImportRefused(MoodmojiError):
    """An import refused as a whole: it would cost more than `ImportLimits` allow."""


class UnsafeZipError(ImportRefused):
    """A zip refused as a whole: a bomb, path traversal, links, damage, or too large."""


_CHUNK = 64 * 1024  # inflated a chunk at a time: memory stays bounded whatever a header says
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_COMPRESSION_NAMES = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 98: "ppmd"}


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


def check_zip(archive: zipfile.ZipFile, limits: ImportLimits) -> None:
    """Refuse the zip unless its directory lists plain, readable files with safe names
    within `limits`. Only a first screen: sizes are checked again as they are inflated."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeZipError(
            f"the zip holds {len(entries)} entries; at most {limits.max_entries} are accepted"
        )
    total = compressed = 0
    for info in entries:
        name = info.filename
        if _unsafe_name(name):
            raise UnsafeZipError(f"the zip entry {name!r} points outside the archive; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeZipError(f"the zip entry {name!r} is a symbolic link; refused")
        if info.flag_bits & 0x1:
            raise UnsafeZipError(
                f"the zip entry {name!r} is encrypted; upload a zip without a password"
            )
        if info.compress_type not in _READABLE_METHODS and not info.is_dir():
            method = _COMPRESSION_NAMES.get(info.compress_type, f"method {info.compress_type}")
            raise UnsafeZipError(
                f"the zip entry {name!r} is compressed with {method}; only stored and "
                "deflate are accepted (re-zip it with a standard zip tool)"
            )
        if info.file_size > limits.max_entry_bytes:
            raise UnsafeZipError(
                f"the zip entry {name!r} unpacks to {info.file_size} bytes; "
                f"at most {limits.max_entry_bytes} per file are accepted"
            )
        _check_ratio(name, info.file_size, info.compress_size, limits)
        total += info.file_size
        compressed += info.compress_size
    if total > limits.max_total_bytes:
        raise UnsafeZipError(
            f"the zip unpacks to {total} bytes; at most {limits.max_total_bytes} are accepted"
        )
    if total > 1024 * 1024 and total / max(compressed, 1) > limits.max_ratio:
        raise UnsafeZipError(
            f"the zip is compressed {total / max(compressed, 1):.0f}:1 overall, "
            f"like a zip bomb (at most {limits.max_ratio:g}:1); refused"
        )


def _check_ratio(name: str, size: int, compressed: int, limits: ImportLimits) -> None:
    ratio = size / max(compressed, 1)
    if size > 1024 * 1024 and ratio > limits.max_ratio:
        raise UnsafeZipError(
            f"the zip entry {name!r} is compressed {ratio:.0f}:1, like a zip bomb "
            f"(at most {limits.max_ratio:g}:1); refused"
        )


class _Budget:
    """What an import has spent so far; refuses the import as it goes past a limit."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0
        self.pixels = 0
        self._cpu_started = time.thread_time()

    def file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_entries:
            raise ImportRefused(
                f"{name} is file {self.files}; at most {self.limits.max_entries} are accepted"
            )

    def inflated(self, name: str, size: int) -> None:
        """Called as bytes arrive: `size` more of file `name`."""
        self.bytes += size
        if self.bytes > self.limits.max_total_bytes:
            raise ImportRefused(
                f"{name} takes the import past {self.limits.max_total_bytes} bytes "
                "unpacked, the most accepted"
            )
        self.cpu(name)

    def decoding(self, name: str, width: int, height: int) -> None:
        """Called before an image is decoded, from the size its header gives."""
        self.pixels += width * height
        if self.pixels > self.limits.max_pixels:
            raise ImportRefused(
                f"{name} ({width}x{height}) takes the import past {self.limits.max_pixels} "
                "decoded pixels, the most accepted"
            )

    def cpu(self, name: str) -> None:
        spent = time.thread_time() - self._cpu_started
        if spent > self.limits.max_cpu_s:
            raise ImportRefused(
                f"the import spent {spent:.1f} s of CPU by {name}; at most "
                f"{self.limits.max_cpu_s:g} s are accepted"
            )


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """The entry's bytes, inflated a chunk at a time and counted as they come."""
    name, limit = info.filename, budget.limits.max_entry_bytes
    chunks, size = [], 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UnsafeZipError(
                        f"the zip entry {name!r} unpacks to more than {limit} bytes; "
                        f"at most {limit} per file are accepted"
                    )
                budget.inflated(name, len(chunk))
                chunks.append(chunk)
    except zipfile.BadZipFile as error:  # a bad CRC, or data that is not what the header says
        raise UnsafeZipError(f"the zip entry {name!r} is damaged ({error}); refused") from None
    except (zlib.error, EOFError, OSError) as error:
        raise UnsafeZipError(
            f"the zip entry {name!r} is damaged ({error or type(error).__name__}); refused"
        ) from None
    except (NotImplementedError, RuntimeError) as error:  # methods, passwords the screen missed
        raise UnsafeZipError(f"the zip entry {name!r} cannot be read ({error}); refused") from None
    _check_ratio(name, size, info.compress_size, budget.limits)
    return b"".join(chunks)


def _open_zip(source: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise UnsafeZipError(f"{source.name} is a damaged zip ({error}); refused") from None


@dataclass
class ImportReport:
    set_dir: Path
    added: Counter = field(default_factory=Counter)  # label -> images added
    duplicates: list[str] = field(default_factory=list)  # names in the source
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # wrong type or size
    unlabelled: list[str] = field(default_factory=list)  # not under positive/ or negative/


def _source_files(
    source: Path, budget: _Budget, report: "ImportReport"
) -> Iterator[tuple[str, bytes]]:
    """(name inside the source, contents) for every file, hidden files left out."""
    if zipfile.is_zipfile(source):
        with _open_zip(source) as archive:
            check_zip(archive, budget.limits)
            for info in archive.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or any(p.startswith((".", "__MACOSX")) for p in parts):
                    continue
                budget.file(info.filename)
                yield info.filename, _read_entry(archive, info, budget)
        return
    # os.walk does not descend into linked folders; linked files are named, not read.
    for folder, subfolders, files in os.walk(source):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for file_name in sorted(files):
            path = Path(folder) / file_name
            relative = path.relative_to(source).as_posix()
            if file_name.startswith("."):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                report.rejected.append((relative, "a symbolic link; links are not followed"))
                continue
            if not stat.S_ISREG(mode):  # a FIFO or device would hang or never end
                report.rejected.append((relative, "not a regular file"))
                continue
            budget.file(relative)
            yield relative, _read_file(path, relative, budget)
        for linked in [d for d in subfolders if (Path(folder) / d).is_symlink()]:
            relative = (Path(folder) / linked).relative_to(source).as_posix()
            report.rejected.append((relative, "a symbolic link; links are not followed"))


def _read_file(path: Path, name: str, budget: _Budget) -> bytes:
    limit = budget.limits.max_entry_bytes
    with path.open("rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImportRefused(f"{name} is over {limit} bytes; at most {limit} per file are accepted")
    budget.inflated(name, len(data))
    return data


def _label_of(name: str) -> str | None:
    folders = [part.lower() for part in Path(name).parts[:-1]]
    return next((part for part in folders if part in LABELS), None)


class _TooLarge(ValueError):
    """An image whose header announces more pixels than we accept: never decoded."""


def _decode(data: bytes, max_side: int, name: str, budget: _Budget) -> Image.Image:
    """The fully decoded image; raises on anything Pillow cannot read to the last byte."""
    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()  # checksums and structure, without decoding pixels
        if max(probe.size) > max_side:  # checked before decoding: a tiny file can claim 50k x 50k
            raise _TooLarge(f"{probe.size[0]}x{probe.size[1]}")
        budget.decoding(name, *probe.size)
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
    zip_limits: ImportLimits | None = None,
) -> ImportReport:
    """Add the labelled images of `source` (a folder or a zip) to the set in `set_dir`.

    Raises `ImportRefused` (`UnsafeZipError` for a zip) for an import refused as a whole
    (see `ImportLimits`).
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
    budget = _Budget(zip_limits or ImportLimits())
    for name, data in _source_files(source, budget, report):
        label = _label_of(name)
        if label is None:
            report.unlabelled.append(name)
            continue
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            report.rejected.append((name, "not an image file type"))
            continue
        try:
            image = _decode(data, max_side, name, budget)
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
        budget.cpu(name)
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
