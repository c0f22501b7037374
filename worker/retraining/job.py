"""One retrain: data in, a new registry version out, resumable at every stage.

A job lives in its own folder, `<retrain_dir>/<job id>/`:

    job.json          the request, the base version it was resolved against, the stage
    data/             the imported images and their manifest.csv (see `data.py`)
    run-<label>/      an ordinary `gan.train` run folder per label (checkpoint.pt, log.jsonl)
    export/           generator-only checkpoints of the new version
    scores.json       FID/KID/... of the new and the base version on data/
    samples.png       sample grid: per label, a row of the base version, then the new one
    curves.png        training loss curves
    error.json        why the last attempt failed, when it did

Stages run in order (data, train each label, evaluate, publish); each leaves files
that a rerun finds, so an interrupted job resumes where it stopped and training
resumes from its last epoch. The stages run in a child process with lower priority
and a few torch threads (`retrain_nice`, `retrain_torch_threads`), so a sampling
worker on the same machine keeps its cores; the parent only watches the files and
reports progress.
"""

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from moodmoji.errors import MoodmojiError
from worker.protocol import LABELS
from worker.registry import ModelRegistry, registry_from_settings, write_text_atomically
from worker.retraining.data import DATA_FOLDER, MANIFEST, prepare_data
from worker.retraining.settings import RetrainSettings

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
ERROR_FILE = "error.json"
SCORES_FILE = "scores.json"
GRID_FILE = "samples.png"
CURVES_FILE = "curves.png"
STAGES = ("data", "train", "evaluate", "publish", "done")


class RetrainError(MoodmojiError):
    """A retrain that cannot go on; the message says why."""


class RetrainSpec(BaseModel):
    """What an operator asked for. Stored in job.json and sent over Redis as JSON."""

    source: str = Field(description="a folder with positive/ and negative/, or such a zip")
    from_version: str | None = Field(None, description="fine-tune this version's generators")
    labels: list[str] = Field(default_factory=lambda: list(LABELS))
    epochs: int | None = Field(None, ge=1, description="epochs per label; None: from settings")
    version: str | None = Field(None, description="name of the new version; None: retrain-<job>")
    requested_by: str | None = None

    def job_id(self) -> str:
        """Stable for the same request, so rerunning the same command resumes it.

        The epoch budget is left out: a rerun may train for longer (or stop sooner).
        """
        source = str(Path(self.source).resolve())
        key = json.dumps([source, self.from_version, sorted(self.labels)])
        return hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Progress:
    stage: str  # data, train, evaluate, publish, done
    done: int  # units of work done: one per epoch, plus one per later stage
    total: int
    eta_s: float | None  # from this session's rate; None until there is one
    detail: str


class JobState(BaseModel):
    job_id: str
    spec: RetrainSpec
    base_version: str  # live when the job started: config source and comparison baseline
    version: str
    stage: str = "data"
    epochs: dict[str, int] = Field(default_factory=dict)  # label -> epochs planned
    started_at: float = Field(default_factory=time.time)


def read_state(job_dir: Path) -> JobState | None:
    path = job_dir / JOB_FILE
    return JobState.model_validate_json(path.read_text()) if path.is_file() else None


def _write_state(job_dir: Path, state: JobState) -> None:
    write_text_atomically(job_dir / JOB_FILE, state.model_dump_json(indent=2) + "\n")


def open_job(
    spec: RetrainSpec,
    settings: RetrainSettings,
    registry: ModelRegistry,
    job_id: str | None = None,
    restart: bool = False,
) -> tuple[Path, JobState]:
    """The job's folder and state: a new one, or the one an earlier run left."""
    unknown = sorted(set(spec.labels) - set(LABELS))
    if unknown or not spec.labels:
        raise RetrainError(f"labels must be some of {', '.join(LABELS)}; got {spec.labels}")
    job_id = job_id or spec.job_id()
    job_dir = settings.retrain_dir / job_id
    if restart and job_dir.exists():
        shutil.rmtree(job_dir)
    state = read_state(job_dir)
    if state is not None:
        if state.spec.model_copy(update={"epochs": spec.epochs}) != spec:
            raise RetrainError(
                f"job folder {job_dir} holds another request; pass --restart to start over"
            )
        if state.spec.epochs != spec.epochs and state.stage in ("data", "train"):
            state.spec = spec  # a new budget for the runs; gan.train resumes with it
            _write_state(job_dir, state)
        return job_dir, state
    base = registry.active_version()
    for label in spec.labels:  # one line now rather than a traceback in the child
        registry.checkpoint_path(label, spec.from_version or base)
    version = spec.version or f"retrain-{job_id}"
    # version_dir refuses a malformed name now, not after training at publish time.
    if registry.version_dir(version).exists():
        raise RetrainError(f"version {version!r} exists already; name the new one with --version")
    job_dir.mkdir(parents=True, exist_ok=True)
    state = JobState(job_id=job_id, spec=spec, base_version=base, version=version)
    _write_state(job_dir, state)
    return job_dir, state


# --- the stages (in the child process) --------------------------------------------


def _training_config(registry: ModelRegistry, state: JobState, label: str, settings):
    """The base (or --from) version's own configuration, with this job's epoch budget."""
    import gan

    source = state.spec.from_version or state.base_version
    payload = gan.load_checkpoint(registry.checkpoint_path(label, source))
    values = dict(payload["config"])
    if state.spec.epochs:
        epochs = state.spec.epochs
    elif settings.retrain_epochs:
        epochs = settings.retrain_epochs
    elif state.spec.from_version:
        epochs = settings.retrain_finetune_epochs
    else:
        # As long as the live model was trained: a run stopped early (or at its best epoch)
        # ships fewer epochs than the `epochs` its config had planned.
        epochs = payload.get("epoch") or values["epochs"]
    values.update(label=label, epochs=epochs, eval_every=0)
    return gan.TrainConfig(**values)


def _run_stages(job_dir: Path, settings: RetrainSettings) -> None:
    import gan

    registry = registry_from_settings(settings)
    state = read_state(job_dir)
    spec = state.spec
    data = prepare_data(Path(spec.source), job_dir, settings)
    configs = {label: _training_config(registry, state, label, settings) for label in spec.labels}
    state.epochs = {label: config.epochs for label, config in configs.items()}
    runs = {label: job_dir / f"run-{label}" for label in spec.labels}
    # A job resumed past training neither trains again nor moves its stage back.
    if _advance(job_dir, state, "train"):
        for label, config in configs.items():
            start = None
            if spec.from_version:
                start = registry.checkpoint_path(label, spec.from_version)
            gan.train(
                config,
                data.folder,
                runs[label],
                device=settings.device,
                progress=False,
                cache_dir=settings.cache_dir,
                init_generator=start,
            )

    _advance(job_dir, state, "evaluate")
    export = job_dir / "export"
    candidate = {
        label: gan.export_generator(runs[label] / "checkpoint.pt", export / f"{label}.pt")
        for label in spec.labels
    }
    base = {label: registry.checkpoint_path(label, state.base_version) for label in spec.labels}
    scores_path = job_dir / SCORES_FILE
    if not scores_path.is_file():
        from worker.retraining.evaluate import score_checkpoints

        scores = score_checkpoints({"new": candidate, "base": base}, data.folder, settings)
        # Atomic: this file's presence is what marks scoring as done on a resume.
        write_text_atomically(scores_path, json.dumps(scores, indent=2) + "\n")
    scores = json.loads(scores_path.read_text())

    from worker.retraining.evaluate import save_comparison_grid, save_curves

    rows = []
    for label in spec.labels:
        rows += [("base", label, base[label]), ("new", label, candidate[label])]
    save_comparison_grid(rows, job_dir / GRID_FILE)
    save_curves(runs, job_dir / CURVES_FILE)

    _advance(job_dir, state, "publish")
    _publish(registry, job_dir, state, data, configs, candidate, scores, settings)
    _advance(job_dir, state, "done")


def _advance(job_dir: Path, state: JobState, stage: str) -> bool:
    """Record `stage` unless the job is already past it; True when it was not past it."""
    if STAGES.index(state.stage) > STAGES.index(stage):
        return False
    state.stage = stage
    _write_state(job_dir, state)
    return True


def _publish(registry, job_dir, state, data, configs, candidate, scores, settings) -> None:
    published = registry.version_dir(state.version).exists()
    existing = registry.meta(state.version) if published else None
    if existing is not None:
        if existing.get("job") == state.job_id:
            return  # published just before an interruption
        raise RetrainError(f"version {state.version!r} was published by someone else meanwhile")
    checkpoints = dict(candidate)
    carried = {}
    for label in registry.labels(state.base_version):
        if label not in checkpoints:  # labels not retrained stay as they were
            checkpoints[label] = registry.checkpoint_path(label, state.base_version)
            carried[label] = state.base_version
    spec = state.spec
    meta = {
        "kind": "retrain",
        "job": state.job_id,
        "requested_by": spec.requested_by,
        "lineage": {
            "base": state.base_version,
            "fine_tuned_from": spec.from_version,
            "retrained_labels": spec.labels,
            "carried_labels": carried,
        },
        "config": {label: config.model_dump() for label, config in configs.items()},
        "data": {
            "source": spec.source,
            "images": data.images,
            "digest": data.digest,
            "manifest": MANIFEST,
        },
        "reference": {
            "digest": data.digest,
            "data_dir": str(data.folder.resolve()),
            "samples": settings.retrain_eval_samples,
            "seed": settings.retrain_eval_seed,
            "metrics": sorted({m for per in scores["new"].values() for m in per}),
        },
        "metrics": scores["new"],
        "comparisons": {state.base_version: scores["base"]},
        "files": {"grid": GRID_FILE, "curves": CURVES_FILE, "manifest": MANIFEST},
        "trained_s": round(time.time() - state.started_at, 1),
    }
    registry.publish(
        state.version,
        checkpoints,
        meta,
        files={
            GRID_FILE: job_dir / GRID_FILE,
            CURVES_FILE: job_dir / CURVES_FILE,
            MANIFEST: job_dir / DATA_FOLDER / MANIFEST,
        },
    )


def _child_main(job_dir: str, settings_values: dict) -> None:
    """The child process: lower priority, few threads, then the stages."""
    settings = RetrainSettings(**settings_values)
    if settings.retrain_nice and hasattr(os, "nice"):
        os.nice(settings.retrain_nice)
    import torch

    torch.set_num_threads(settings.retrain_torch_threads)
    error_path = Path(job_dir) / ERROR_FILE
    try:
        _run_stages(Path(job_dir), settings)
    except MoodmojiError as error:
        error_path.write_text(json.dumps({"message": str(error), "user": True}) + "\n")
        raise SystemExit(3) from error
    except BaseException as error:
        text = f"{type(error).__name__}: {error}"
        error_path.write_text(json.dumps({"message": text, "user": False}) + "\n")
        raise


# --- the parent: run, watch, report -------------------------------------------------


def _epochs_done(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


class _ProgressMeter:
    """Progress from the job folder's files; ETA from this session's own rate."""

    def __init__(self, job_dir: Path):
        self.job_dir = job_dir
        self.started = time.monotonic()
        self.first_done: int | None = None

    def read(self) -> Progress:
        state = read_state(self.job_dir)
        planned = state.epochs or {label: 0 for label in state.spec.labels}
        epochs = {label: _epochs_done(self.job_dir / f"run-{label}") for label in planned}
        later = ("evaluate", "publish")
        total = sum(planned.values()) + len(later) + 1  # +1: the data stage
        done = (state.stage != "data") + sum(min(epochs[k], planned[k]) for k in planned)
        done += sum(STAGES.index(state.stage) > STAGES.index(s) for s in later)
        if state.stage == "done":
            done = total
        if self.first_done is None:
            self.first_done = done
        elapsed = time.monotonic() - self.started
        gained = done - self.first_done
        eta = (total - done) * elapsed / gained if gained > 0 else None
        detail = {
            "data": "checking and importing images",
            "train": ", ".join(f"{k} epoch {epochs[k]}/{planned[k]}" for k in planned),
            "evaluate": "scoring the new and the live version (FID/KID)",
            "publish": f"publishing {state.version}",
            "done": f"published {state.version}",
        }[state.stage]
        return Progress(state.stage, done, total, eta, detail)


def run_job(
    job_dir: Path,
    settings: RetrainSettings,
    on_progress: Callable[[Progress], None] | None = None,
    poll_s: float = 0.5,
    isolated: bool = True,
) -> JobState:
    """Run (or resume) the job in `job_dir` until its version is published.

    `isolated`: in a child process at lower priority (the default); tests may run
    the stages in this process instead.
    """
    (job_dir / ERROR_FILE).unlink(missing_ok=True)
    meter = _ProgressMeter(job_dir)
    report = on_progress or (lambda _p: None)
    if read_state(job_dir).stage != "done":
        if not isolated:
            report(meter.read())
            try:
                _run_stages(job_dir, settings)
            finally:
                report(meter.read())
        else:
            _run_child(job_dir, settings, meter, report, poll_s)
    report(meter.read())
    return read_state(job_dir)


def _run_child(job_dir, settings, meter, report, poll_s) -> None:
    context = multiprocessing.get_context("spawn")  # no torch state inherited from a fork
    child = context.Process(
        target=_child_main,
        args=(str(job_dir), settings.model_dump()),
        name=f"retrain-{job_dir.name}",
    )
    child.start()
    try:
        while child.is_alive():
            report(meter.read())
            child.join(poll_s)
    except BaseException:
        # Interrupted: stop training; the files on disk let a rerun resume.
        child.terminate()
        child.join(10)
        raise
    if child.exitcode != 0:
        error_path = job_dir / ERROR_FILE
        if error_path.is_file():
            error = json.loads(error_path.read_text())
            if error["user"]:
                raise RetrainError(error["message"])
            raise RuntimeError(f"retrain failed: {error['message']} (see {job_dir})")
        raise RuntimeError(f"the training process died (exit code {child.exitcode})")


def retrain(
    spec: RetrainSpec,
    settings: RetrainSettings,
    on_progress: Callable[[Progress], None] | None = None,
    job_id: str | None = None,
    restart: bool = False,
    isolated: bool = True,
) -> JobState:
    """Open (or find) the job for `spec` and run it to a published version."""
    registry = registry_from_settings(settings)
    job_dir, _state = open_job(spec, settings, registry, job_id, restart)
    return run_job(job_dir, settings, on_progress, isolated=isolated)
