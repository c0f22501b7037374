"""A shape gate for RGBA samples: send the emoji, not the fragment.

A GAN trained on a dozen art styles has to map a connected latent space onto
disconnected looks, so some latents land between them and draw a fragment: a
few scattered blobs on transparency, or a faint see-through face. The gate
rejects a sample whose shape no real emoji has, by three measures that are
cheap and need no model:

    coverage  share of the 64x64 pixels that are opaque (alpha > 1/2)
    solidity  share of the opaque pixels in the largest blob, holes filled
    contrast  pixel standard deviation on white (mean over RGB, [-1, 1] scale):
              a faint face, white strokes on transparency, shows as a blank
              tile on Discord's light theme

Thresholds are fitted on the training images (a low percentile of each
measure), stored in the exported generator, and applied by `EmojiSampler`:
a rejected sample is replaced by the next latent from the same request's own
seeded stream, so a seed still gives the same emojis alone or batched. This is
rejection sampling around the model; the paper's latent (adjustment layer and
Uniform(-1, 1) shift) is untouched. Scores are reported with and without it.
"""

from dataclasses import asdict, dataclass, fields

import numpy as np
from torch import Tensor

PERCENTILE = 1.0  # a real emoji's shape fails the gate 1% of the time per measure


@dataclass(frozen=True)
class ShapeGate:
    min_coverage: float
    min_solidity: float
    min_contrast: float = 0.0  # 0: off, as in the gates of checkpoints saved before it

    def passes(self, images: Tensor) -> np.ndarray:
        """(N,) bools for (N, 4, H, W) RGBA images in [-1, 1]."""
        coverage, solidity = shape_measures(images)
        passed = (coverage >= self.min_coverage) & (solidity >= self.min_solidity)
        if self.min_contrast:
            passed &= contrast_on_white(images) >= self.min_contrast
        return passed

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def shape_measures(images: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, solidity), each (N,), of (N, 4, H, W) RGBA images in [-1, 1].

    All N masks are labelled in one scipy call, with a structuring element that never
    connects one image to the next, and holes are found by labelling the background
    rather than by dilating it to convergence: the worker's sampling thread runs this
    on every pass (the same numbers as scipy's binary_fill_holes image by image, tested)."""
    from scipy import ndimage

    opaque = images[:, 3].detach().float().cpu().numpy() > 0.0  # alpha > 1/2
    coverage = opaque.mean(axis=(1, 2))
    solidity = np.zeros(len(opaque))
    within_an_image = np.zeros((3, 3, 3), bool)
    within_an_image[1] = ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(opaque, structure=within_an_image)
    if not count:
        return coverage, solidity
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    owner = np.zeros(count + 1, dtype=np.int64)  # the image each blob is in
    owner[labels.ravel()] = np.repeat(np.arange(len(opaque)), labels[0].size)
    # Each image's largest blob, the first in scan order on a tie (as argmax would pick).
    ids = np.arange(1, count + 1)
    order = np.lexsort((ids, -sizes[1:], owner[1:]))
    first = np.r_[True, owner[1:][order][1:] != owner[1:][order][:-1]]
    largest = np.zeros(len(opaque), dtype=np.int64)
    largest[owner[1:][order][first]] = ids[order][first]
    blob = (labels == largest[:, None, None]) & (largest[:, None, None] > 0)
    # Holes: the parts of the background that do not reach the image's border (what
    # binary_fill_holes fills, in one labelling pass instead of dilations to convergence).
    background, _ = ndimage.label(~blob, structure=within_an_image)
    edge = np.zeros_like(blob)
    edge[:, [0, -1], :] = edge[:, :, [0, -1]] = True
    outside = np.zeros(background.max() + 1, dtype=bool)
    outside[background[edge]] = True
    outside[0] = True  # label 0 is the blob itself
    filled = (~outside[background] | blob).sum(axis=(1, 2))
    area = opaque.sum(axis=(1, 2))
    has_blob = largest > 0
    # over 1 only through filled holes
    solidity[has_blob] = np.minimum(1.0, filled[has_blob] / area[has_blob])
    return coverage, solidity


GATE_MEASURES = {field.name for field in fields(ShapeGate)}


def contrast_on_white(images: Tensor) -> np.ndarray:
    """(N,) pixel standard deviation of (N, 4, H, W) RGBA images composited on white."""
    from gan.data import composite

    flat = composite(images.detach().float().cpu()).flatten(2)  # (N, 3, H*W)
    # Tensor.std over the pixels, written out: torch's std kernel ran 1.5-2x slower on the
    # sampler's channels_last images (0.24 of a lone pass's 0.8 ms of gate).
    deviation = flat - flat.mean(dim=2, keepdim=True)
    variance = deviation.square().sum(dim=2) / (flat.shape[2] - 1)  # unbiased, as std's
    return variance.sqrt().mean(dim=1).numpy()


def fit_gate(real: Tensor, percentile: float = PERCENTILE) -> ShapeGate:
    """Thresholds from (N, 4, H, W) real RGBA images: the `percentile` of each measure."""
    coverage, solidity = shape_measures(real)
    return ShapeGate(
        float(np.percentile(coverage, percentile)),
        float(np.percentile(solidity, percentile)),
        float(np.percentile(contrast_on_white(real), percentile)),
    )
