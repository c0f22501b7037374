"""Retraining settings (`MOODMOJI_RETRAIN_*`), on top of the worker's (registry, Redis, queue)."""

from pathlib import Path

from pydantic import Field

from worker.settings import WorkerSettings


class RetrainSettings(WorkerSettings):
    retrain_dir: Path = Field(
        Path("runs/retrain"),
        description="job folders: uploaded data, training runs, scores; a rerun resumes here",
    )
    retrain_epochs: int | None = Field(
        None, ge=1, description="epochs per label; empty keeps the base version's own count"
    )
    retrain_finetune_epochs: int = Field(
        20, ge=1, description="epochs per label when fine-tuning with --from (unless set above)"
    )
    retrain_eval_samples: int = Field(
        256, ge=2, description="generated images per label scored for FID/KID"
    )
    retrain_eval_seed: int = Field(
        12345, description="latent seed of the scored images: every version sees the same latents"
    )
    retrain_metrics: list[str] = Field(
        default_factory=lambda: ["fid", "kid", "class_consistency"],
        description="metrics recorded per label (fid and kid gate promotion)",
    )
    retrain_min_images: int = Field(
        8, ge=1, description="fewest usable images per label an upload must hold"
    )
    retrain_torch_threads: int = Field(
        1,
        ge=1,
        description="torch threads of the training process: the cores it may take from sampling",
    )
    retrain_nice: int = Field(
        10, ge=0, le=19, description="niceness of the training process (higher: yields more)"
    )
    retrain_max_upload_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="largest zip accepted (Discord's attachment limit)"
    )
    retrain_max_unpacked_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="most bytes an uploaded zip may unpack to"
    )
    retrain_max_file_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="most bytes one file of an upload may unpack to"
    )
    retrain_max_entries: int = Field(5000, ge=1, description="most files in an upload")
    retrain_max_pixels: int = Field(
        200_000_000,
        ge=1,
        description="most pixels an upload's images may decode to, all together",
    )
    retrain_max_import_cpu_s: float = Field(
        120.0, gt=0, description="most CPU seconds unpacking and decoding an upload may take"
    )
    retrain_max_ratio: float = Field(
        200.0, gt=1, description="compression ratio past which a zip is taken for a zip bomb"
    )
    retrain_claim_idle_s: float = Field(
        300.0,
        ge=1,
        description="a running job's runner touches it every quarter of this; a job untouched "
        "this long belonged to a runner that died and is taken over by another",
    )
    retrain_event_maxlen: int = Field(
        1000, ge=10, description="approximate cap on each job's progress stream in Redis"
    )
