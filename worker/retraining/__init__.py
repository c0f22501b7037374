"""Operator retraining: an operator's images in, a scored registry version out.

- `retrain` / `RetrainSpec`: train the live version's configuration (or fine-tune a
  version) on a data folder or zip, resumably, in a low-priority child process, and
  publish the result with its metrics, lineage, sample grid, curves and data manifest.
- `check_promotion` / `compare`: the torch-free gate `promote` applies (no worse FID/KID
  than the live version on the same reference images).
- `RetrainQueue` / `serve_retrain_jobs`: the same job requested over a Redis stream (from
  Discord), with progress events on a stream of its own.
See docs/operators.md.
"""

from worker.retraining.compare import (
    Comparison,
    Verdict,
    check_promotion,
    compare,
    promote_checked,
)
from worker.retraining.data import UploadRefused, prepare_data
from worker.retraining.job import (
    Progress,
    RetrainError,
    RetrainSpec,
    open_job,
    read_state,
    retrain,
    run_job,
)
from worker.retraining.queue import JOB_ID, RetrainEvent, RetrainQueue, RetrainRequest
from worker.retraining.settings import RetrainSettings

__all__ = [
    "JOB_ID",
    "Comparison",
    "Progress",
    "RetrainError",
    "RetrainEvent",
    "RetrainQueue",
    "RetrainRequest",
    "RetrainSettings",
    "RetrainSpec",
    "UploadRefused",
    "Verdict",
    "check_promotion",
    "compare",
    "open_job",
    "prepare_data",
    "promote_checked",
    "read_state",
    "retrain",
    "run_job",
]
