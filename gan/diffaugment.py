"""Differentiable augmentation (Zhao et al., NeurIPS 2020) for training GANs on little data.

The same random transform is applied to real and generated images before D
sees them, and gradients flow through it to G, so D cannot overfit the few
real images without G learning to produce augmented-looking ones.
A policy is a comma-separated list of keys of `AUGMENTS`, e.g. "color,translation,cutout".
Images are (B, 3, H, W) in [-1, 1].
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def diff_augment(images: Tensor, policy: str) -> Tensor:
    for name in filter(None, (p.strip() for p in policy.split(","))):
        for augment in AUGMENTS[name]:
            images = augment(images)
    return images.contiguous()


def parse_policy(policy: str) -> str:
    """Validate a policy string; returns it normalised."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        from moodmoji.errors import MoodmojiError

        raise MoodmojiError(
            f"unknown DiffAugment op(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTS)}"
        )
    return ",".join(names)


def _rand(images: Tensor, *shape: int) -> Tensor:
    return torch.rand(images.size(0), *shape, dtype=images.dtype, device=images.device)


def rand_brightness(x: Tensor) -> Tensor:
    return x + (_rand(x, 1, 1, 1) - 0.5)


def rand_saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean


def rand_contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def rand_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift by up to `ratio` of the size, filling with zeros (mid-grey)."""
    b, _, h, w = x.shape
    shift_y, shift_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-shift_y, shift_y + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-shift_x, shift_x + 1, (b, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + ty + 1, 0, h + 1)
    grid_x = torch.clamp(grid_x + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H+2, W+2): the border is the fill value
    return padded.permute(0, 2, 3, 1)[grid_b, grid_y, grid_x].permute(0, 3, 1, 2)


def rand_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a random square of `ratio` of the size in each image."""
    b, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - cut_h % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cut_w % 2), (b, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(cut_h, device=x.device),
        torch.arange(cut_w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + oy - cut_h // 2, 0, h - 1)
    grid_x = torch.clamp(grid_x + ox - cut_w // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[grid_b, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)


AUGMENTS = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}
