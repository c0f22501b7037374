"""Checkpoints: plain dicts of state_dicts and primitives, loaded with `weights_only=True`.

Two kinds share one format:
- `training`: everything needed to resume a run exactly (G, D, EMA G, both
  optimisers, epoch, step, RNG states, config);
- `generator`: the generator alone (EMA weights when the run kept them), in
  fp16, for sampling and shipping, with the RGBA runs' shape gate (`gan.gate`).
Files are written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint behind.
"""

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from gan.config import TrainConfig
from moodmoji.errors import MoodmojiError

FORMAT = "moodmoji.gan"
FORMAT_VERSION = 1


class CheckpointError(MoodmojiError):
    """A file that is not a usable moodmoji checkpoint."""


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path | str, kind: str | None = None) -> dict[str, Any]:
    """Load and validate a checkpoint; `kind` ('training' or 'generator') if one is required."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds on arbitrary bytes: all mean "not ours"
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise CheckpointError(
            f"{path} is not a moodmoji checkpoint (could not read it: {first_line[:120]})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a moodmoji checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('format_version')}; "
            f"this moodmoji reads version {FORMAT_VERSION}"
        )
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} is a {payload.get('kind')} checkpoint; need a {kind} one")
    return payload


def checkpoint_config(payload: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**payload["config"])


def file_version(path: Path | str) -> str:
    """A short content hash naming a checkpoint file's version."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def generator_weights(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to sample with: EMA G when the run kept one, else G."""
    return payload.get("generator_ema") or payload["generator"]


def export_generator(
    checkpoint: Path | str,
    out_path: Path | str,
    metrics: dict | None = None,
    gate: dict | None = None,
) -> Path:
    """Write a compact generator-only checkpoint (fp16 weights) from a training checkpoint.

    The shape gate (`gan.gate`) goes along: the run's own, or `gate` where given.
    """
    payload = load_checkpoint(checkpoint)
    weights = generator_weights(payload)
    compact = {
        name: tensor.half() if tensor.is_floating_point() else tensor
        for name, tensor in weights.items()
    }
    return save_checkpoint(
        {
            "kind": "generator",
            "config": payload["config"],
            "generator": compact,
            "epoch": payload.get("epoch"),
            "metrics": metrics if metrics is not None else payload.get("metrics", {}),
            "gate": gate if gate is not None else payload.get("gate"),
        },
        out_path,
    )
