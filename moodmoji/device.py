"""Picking a torch device from a setting."""

import torch

from moodmoji.errors import MoodmojiError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; anything else must name an available device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise MoodmojiError(
            f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MoodmojiError(f"device {name!r} asked for, but no CUDA device is available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise MoodmojiError(f"device {name!r} asked for, but MPS is not available here")
    return device
