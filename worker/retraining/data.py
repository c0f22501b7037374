"""An operator's images into a job folder: checked, normalised, with a manifest.

Every retrain's data goes through the emoji set importer (`gan.emoji_set.import_images`),
whether it is a folder on the operator's disk or a zip uploaded from Discord, so the
same checks apply (format, size, corrupt files, duplicates, zip bombs, path traversal,
and the bytes, files, pixels and CPU time an import may really cost)
and the job keeps a `manifest.csv` naming each image it trained on and its sha256.
Nothing is written outside `<job>/data`.
"""

import hashlib
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from moodmoji.errors import MoodmojiError
from worker.protocol import LABELS
from worker.retraining.settings import RetrainSettings

DATA_FOLDER = "data"
MANIFEST = "manifest.csv"


class UploadRefused(MoodmojiError):
    """Data a retrain cannot use; the message says why, in one line."""


@dataclass(frozen=True)
class PreparedData:
    folder: Path
    images: dict[str, int]  # label -> images
    digest: str  # sha256 of the (label, pixel hash) pairs: names the reference set
    skipped: list[str]  # "name (why)" for each file left out


def _shown(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def data_digest(rows) -> str:
    """A digest of the images trained on (label and content), whatever their file names."""
    pairs = sorted(f"{row.label}:{row.sha256}" for row in rows)
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def prepare_data(source: Path, job_dir: Path, settings: RetrainSettings) -> PreparedData:
    """Import `source` (a folder with positive/ and negative/, or such a zip) into the job.

    Raises `UploadRefused` when the source cannot be used: not a folder or zip, a zip
    refused as a whole, or fewer than `retrain_min_images` usable images for a label.
    """
    from gan.emoji_set import ImportLimits, import_images  # refusals are MoodmojiErrors

    source = Path(source)
    folder = job_dir / DATA_FOLDER
    if (folder / MANIFEST).is_file():  # prepared by an earlier, interrupted run
        return _summary(folder, [])
    if not source.exists():
        raise UploadRefused(f"no data at {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise UploadRefused(
                f"{source.name} is not a zip file; upload a .zip with positive/ and negative/ "
                "folders of images"
            )
        if source.stat().st_size > settings.retrain_max_upload_bytes:
            raise UploadRefused(
                f"{source.name} is {source.stat().st_size} bytes; at most "
                f"{settings.retrain_max_upload_bytes} are accepted"
            )
    limits = ImportLimits(
        max_entries=settings.retrain_max_entries,
        max_total_bytes=settings.retrain_max_unpacked_bytes,
        max_entry_bytes=settings.retrain_max_file_bytes,
        max_ratio=settings.retrain_max_ratio,
        max_pixels=settings.retrain_max_pixels,
        max_cpu_s=settings.retrain_max_import_cpu_s,
    )
    staging = job_dir / ".data-import"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        report = import_images(staging, source, licence="operator upload", zip_limits=limits)
    except MoodmojiError as error:
        raise UploadRefused(str(error)) from error
    skipped = [
        *(f"{name} ({why})" for name, why in report.corrupt),
        *(f"{name} ({why})" for name, why in report.rejected),
        *(f"{name} (not under a positive/ or negative/ folder)" for name in report.unlabelled),
    ]
    short = [label for label in LABELS if report.added.get(label, 0) < settings.retrain_min_images]
    if short:
        shutil.rmtree(staging, ignore_errors=True)
        counts = ", ".join(f"{report.added.get(label, 0)} {label}" for label in LABELS)
        why = f"; left out: {_shown(skipped)}" if skipped else ""
        raise UploadRefused(
            f"not enough usable images ({counts}; each label needs at least "
            f"{settings.retrain_min_images}) in {source.name}{why}"
        )
    staging.rename(folder)
    return _summary(folder, skipped)


def _summary(folder: Path, skipped: list[str]) -> PreparedData:
    from gan.emoji_set import read_manifest

    rows = read_manifest(folder)
    counts = {label: 0 for label in LABELS}
    for row in rows:
        counts[row.label] += 1
    return PreparedData(folder, counts, data_digest(rows), skipped)
