"""Retrain jobs as the console shows them: the newest event of each job's Redis stream
(queued, running with stage and progress, done, failed), and what its folder under
`MOODMOJI_RETRAIN_DIR` holds while it trains: job.json, each label's `gan.train` log (one
JSON line per epoch: losses, D outputs, FID/KID when scored) and the imported upload.

Jobs started with `moodmoji retrain` on this machine have a folder and no stream; jobs
queued from Discord or the console have a stream, and a folder once a runner that shares
MOODMOJI_RETRAIN_DIR takes them. Both are listed. Reading files never imports torch.
"""

import asyncio
import io
import json
import re
from pathlib import Path

from PIL import Image, ImageDraw

from worker import LABELS
from worker.retraining import JOB_ID, read_state

RUN_LOG = "log.jsonl"  # gan.train's per-epoch log in each run-<label>/ (gan/training.py)
DATA_FOLDER = "data"  # the imported upload (worker/retraining/data.py)
IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".gif")
THUMB = 48
SHEET_COLUMNS = 8
SHEET_PER_LABEL = 32
_SHEET_BACKGROUND = (54, 57, 63)  # Discord's dark theme: transparent emojis show as drawn


def job_dir(settings, job_id: str) -> Path:
    if not re.match(JOB_ID, job_id):
        raise ValueError(f"{job_id!r} is not a job id")
    return Path(settings.retrain_dir) / job_id


def _folder_jobs(settings) -> list[str]:
    root = Path(settings.retrain_dir)
    if not root.is_dir():
        return []
    return [p.name for p in root.iterdir() if p.is_dir() and re.match(JOB_ID, p.name)]


def read_curves(folder: Path) -> dict[str, list[dict]]:
    """label -> one record per finished epoch (numbers only), from gan.train's logs."""
    curves = {}
    for label in LABELS:
        path = folder / f"run-{label}" / RUN_LOG
        if not path.is_file():
            continue
        records = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written
            records.append({k: v for k, v in record.items() if isinstance(v, int | float)})
        curves[label] = records
    return curves


def _folder_summary(folder: Path) -> dict:
    state = read_state(folder) if (folder / "job.json").is_file() else None
    if state is None:
        return {}
    return {
        "stage": state.stage,
        "version": state.version,
        "base_version": state.base_version,
        "labels": state.spec.labels,
        "from_version": state.spec.from_version,
        "requested_by": state.spec.requested_by,
        "epochs": state.epochs,
        "started_at": state.started_at,
        "has_upload": (folder / DATA_FOLDER).is_dir(),
    }


async def job_summaries(settings, retrain_queue) -> list[dict]:
    """Every job the console can see, newest first."""
    ids = set(await asyncio.to_thread(_folder_jobs, settings))
    if retrain_queue is not None:
        ids |= set(await retrain_queue.job_ids())
    jobs = []
    for job_id in ids:
        event = await retrain_queue.latest_event(job_id) if retrain_queue is not None else None
        summary = {
            "id": job_id,
            **await asyncio.to_thread(_folder_summary, job_dir(settings, job_id)),
        }
        if event is not None:
            summary.update(
                state=event.state,
                stage=event.stage or summary.get("stage", ""),
                done=event.done,
                total=event.total,
                eta_s=event.eta_s,
                detail=event.detail,
                message=event.message,
                version=event.version or summary.get("version"),
                at=event.at,
            )
        else:  # a CLI job: its folder is all there is
            summary.setdefault("state", "done" if summary.get("stage") == "done" else "local")
        jobs.append(summary)
    jobs.sort(key=lambda job: job.get("at") or job.get("started_at") or 0, reverse=True)
    return jobs


def job_curves(settings, job_id: str) -> dict:
    folder = job_dir(settings, job_id)
    return {"id": job_id, **_folder_summary(folder), "curves": read_curves(folder)}


def upload_sheet(settings, job_id: str) -> bytes | None:
    """The job's imported images as one PNG, a row block per label; None before import."""
    data = job_dir(settings, job_id) / DATA_FOLDER
    if not data.is_dir():
        return None
    groups = {label: [] for label in LABELS}
    for path in sorted(data.rglob("*")):
        label = next((part for part in path.relative_to(data).parts if part in groups), None)
        if label and path.suffix.lower() in IMAGE_SUFFIXES and len(groups[label]) < SHEET_PER_LABEL:
            groups[label].append(path)
    blocks = [(label, paths) for label, paths in groups.items() if paths]
    if not blocks:
        return None
    cell, title = THUMB + 4, 16
    height = sum(title + cell * -(-len(paths) // SHEET_COLUMNS) for _label, paths in blocks)
    sheet = Image.new("RGB", (SHEET_COLUMNS * cell + 4, height + 4), _SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = 2
    for label, paths in blocks:
        draw.text((4, y + 2), f"{label} ({len(paths)} shown)", fill=(220, 221, 222))
        y += title
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                thumb = image.convert("RGBA")
                thumb.thumbnail((THUMB, THUMB))
            x = 2 + (i % SHEET_COLUMNS) * cell + (cell - thumb.width) // 2
            sheet.paste(thumb, (x, y + (i // SHEET_COLUMNS) * cell + 2), thumb)
        y += cell * -(-len(paths) // SHEET_COLUMNS)
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()
