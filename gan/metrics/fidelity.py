"""Scores that FID folds together or cannot see, for judging a GAN honestly.

- Precision, recall, density, coverage (Naeem et al., ICML 2020, k-nearest-
  neighbour balls in a feature space): precision asks whether samples look
  like real images, recall whether the real images' variety is drawn,
  coverage how many real images have a sample nearby. An ImageNet-pretrained
  D can lower FID without better pictures (Kynkaanniemi et al., ICLR 2023), so
  these are read beside it.
- Distinct colours per image: emoji art is flat, a few dozen colours; a
  blotchy sample has hundreds.
- The memorisation ratio: distance to the nearest training image over the
  distance to the second nearest (Gu et al. 2023, "On memorization in
  diffusion models"); under 1/3 the sample is a near-copy of one image.
Images are (N, 3, H, W) in [-1, 1]; features are (N, D) arrays.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MEMORISED_BELOW = 1 / 3
COLOUR_LEVELS = 32  # quantise each channel to this many levels before counting colours


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(squared, 0.0, None))


def _kth_neighbour_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point."""
    distances = _distances(features, features)
    return np.partition(distances, k, axis=1)[:, k]  # column 0 is the point itself


@dataclass(frozen=True)
class Fidelity:
    precision: float
    recall: float
    density: float
    coverage: float


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> Fidelity:
    """Naeem et al. (2020), with Euclidean k-NN balls (k = 5 as in the paper)."""
    real_radii = _kth_neighbour_radii(real, k)  # (R,)
    fake_radii = _kth_neighbour_radii(fake, k)  # (F,)
    cross = _distances(real, fake)  # (R, F)
    inside_real = cross < real_radii[:, None]  # sample j inside real i's ball
    return Fidelity(
        precision=float(inside_real.any(axis=0).mean()),
        recall=float((cross < fake_radii[None, :]).any(axis=1).mean()),
        density=float(inside_real.sum() / (k * fake.shape[0])),
        coverage=float((cross.min(axis=1) < real_radii).mean()),
    )


def distinct_colours(images: Tensor, levels: int = COLOUR_LEVELS) -> np.ndarray:
    """(N,) counts of distinct colours per image, each channel quantised to `levels`."""
    quantised = images.clamp(-1, 1).add(1).mul((levels - 1) / 2).round().long()  # (N, 3, H, W)
    codes = (quantised[:, 0] * levels + quantised[:, 1]) * levels + quantised[:, 2]
    return np.array([len(torch.unique(c)) for c in codes])


def nearest_neighbour_ratios(samples: Tensor, training: Tensor) -> np.ndarray:
    """(N,) distance to the nearest training image / distance to the second nearest, in pixels."""
    a = samples.flatten(1).double().numpy()
    b = training.flatten(1).double().numpy()
    two_nearest = np.partition(_distances(a, b), 1, axis=1)[:, :2]
    return two_nearest[:, 0] / np.maximum(two_nearest[:, 1], 1e-12)
