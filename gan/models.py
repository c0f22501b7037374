"""The paper's three GANs at 64x64: DCGAN, DeLiGAN and the Proposed GAN.

The generators differ only in the vector that enters their convolutional body:

    DCGAN     z ~ N(0, I)                                      size nz
    DeLiGAN   z = mu_k + sigma_k * eps, eps ~ N(0, I),         size nz
              k drawn uniformly per sample; mu, sigma learned
    Proposed  z' = A z + b (+ m, m ~ U(-1, 1) per component)   size N * nz

The body is the DCGAN deconvolution stack (`deconv_stack`, the paper's) or a
FastGAN-lite stack (`FastGANBody`: nearest upsampling, 3x3 convolutions, GLU,
skip-layer excitation), chosen by `body`; it draws RGB, or RGBA with
`channels=4` (straight alpha, in [-1, 1] like the colours).

All randomness a generator needs is drawn by its `sample_latent` into a
`Latent`; `forward(latent)` is then deterministic. Drawing latents on the CPU
from a seeded `torch.Generator` makes a seed give the same emoji on any device
and in any batch (BatchNorm uses its running statistics in eval mode).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gan.config import TrainConfig


@dataclass
class Latent:
    z: Tensor  # (B, nz) standard normal noise
    component: Tensor | None = None  # DeLiGAN: (B,) mixture component of each sample
    shift: Tensor | None = None  # Proposed: (B, N * nz) mean shift, U(-1, 1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Latent":
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Latent(move(self.z), move(self.component), move(self.shift))

    def pin_memory(self) -> "Latent":
        """In page-locked host memory, so a copy to a GPU can run asynchronously."""
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return Latent(pin(self.z), pin(self.component), pin(self.shift))

    def __len__(self) -> int:
        return self.z.shape[0]


def cat_latents(latents: list[Latent]) -> Latent:
    """Concatenate latents of one model along the batch dimension."""
    join = lambda ts: None if ts[0] is None else torch.cat(ts)  # noqa: E731
    return Latent(
        torch.cat([lat.z for lat in latents]),
        join([lat.component for lat in latents]),
        join([lat.shift for lat in latents]),
    )


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ProjectTo4x4(nn.ConvTranspose2d):
    """The first layer of both bodies: a (B, in_dim, 1, 1) vector to a (B, out, 4, 4) map.

    A 4x4 transposed convolution of a 1x1 input is a matrix product, and computed as one:
    the same weights and numbers as `nn.ConvTranspose2d` (so checkpoints load
    unchanged), about 10x faster on a CPU, where the convolution kernels spent 7-9 ms of
    a batch of 32 on this one layer (docs/benchmarks.md).
    """

    def __init__(self, in_dim: int, out_channels: int):
        super().__init__(in_dim, out_channels, 4, 1, 0, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        if h.shape[2:] != (1, 1):
            return super().forward(h)
        weight, batch = self.weight, h.shape[0]  # weight: (in_dim, out, 4, 4)
        if weight.is_contiguous(memory_format=torch.channels_last):
            # Stored as (in_dim, 4, 4, out), as the sampler keeps it: multiplied in that
            # order it needs no copy (flattening it as (in_dim, out * 16) copied 6.5 MB a
            # pass), and gives the channels_last map the next convolutions want.
            out = h.flatten(1) @ weight.permute(0, 2, 3, 1).flatten(1)
            out = out.view(batch, 4, 4, self.out_channels).permute(0, 3, 1, 2)
        else:  # weight: (in_dim, out, 4, 4) -> (in_dim, out * 16)
            out = (h.flatten(1) @ weight.flatten(1)).view(batch, self.out_channels, 4, 4)
        # A bias only once a batch norm is folded in for sampling (`gan.sample`).
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def deconv_stack(in_dim: int, ngf: int, channels: int = 3) -> nn.Sequential:
    """The DCGAN generator body: a (B, in_dim, 1, 1) vector to a (B, C, 64, 64) image in [-1, 1]."""
    stack = nn.Sequential(
        ProjectTo4x4(in_dim, ngf * 8),  # (B, ngf*8, 4, 4)
        nn.BatchNorm2d(ngf * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),  # (B, ngf*4, 8, 8)
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # (B, ngf*2, 16, 16)
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # (B, ngf, 32, 32)
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False),  # (B, C, 64, 64)
        nn.Tanh(),
    )
    stack.apply(init_dcgan_weights)
    return stack


class SkipLayerExcitation(nn.Module):
    """FastGAN's SLE: a coarse feature map gates the channels of a fine one (Liu et al. 2021)."""

    def __init__(self, coarse_channels: int, fine_channels: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),  # (B, c_coarse, 4, 4)
            nn.Conv2d(coarse_channels, fine_channels, 4, 1, 0, bias=False),  # (B, c_fine, 1, 1)
            nn.SiLU(),
            nn.Conv2d(fine_channels, fine_channels, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, coarse: Tensor, fine: Tensor) -> Tensor:
        return fine * self.gate(coarse)


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Double the size: nearest upsampling, then a 3x3 conv (no checkerboard), BatchNorm, GLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout * 2),
        nn.GLU(dim=1),
    )


class FastGANBody(nn.Module):
    """FastGAN-lite at 64x64 (Liu et al., ICLR 2021): a (B, in_dim, 1, 1) vector to (B, C, 64, 64).

    DCGAN's strided transposed convolutions leave checkerboard blotches in flat
    areas; FastGAN upsamples by nearest neighbour and smooths with a 3x3
    convolution, gates with GLU, and lets the 4 and 8 px maps excite the 32 and
    64 px ones (skip-layer excitation), so global layout steers fine detail.
    """

    def __init__(self, in_dim: int, ngf: int = 32, channels: int = 3):
        super().__init__()
        c4, c8, c16, c32, c64 = ngf * 8, ngf * 4, ngf * 2, ngf, max(ngf // 2, 4)
        self.init = nn.Sequential(
            ProjectTo4x4(in_dim, c4 * 2),  # (B, 2*c4, 4, 4)
            nn.BatchNorm2d(c4 * 2),
            nn.GLU(dim=1),  # (B, c4, 4, 4)
        )
        self.up8 = up_block(c4, c8)  # (B, c8, 8, 8)
        self.up16 = up_block(c8, c16)  # (B, c16, 16, 16)
        self.up32 = up_block(c16, c32)  # (B, c32, 32, 32)
        self.up64 = up_block(c32, c64)  # (B, c64, 64, 64)
        self.sle32 = SkipLayerExcitation(c4, c32)
        self.sle64 = SkipLayerExcitation(c8, c64)
        self.to_image = nn.Sequential(nn.Conv2d(c64, channels, 3, 1, 1), nn.Tanh())
        self.apply(init_dcgan_weights)

    def forward(self, h: Tensor) -> Tensor:
        f4 = self.init(h)
        f8 = self.up8(f4)
        f32 = self.sle32(f4, self.up32(self.up16(f8)))
        f64 = self.sle64(f8, self.up64(f32))
        return self.to_image(f64)


BODIES = {"dcgan": deconv_stack, "fastgan": FastGANBody}


class DCGANGenerator(nn.Module):
    """Radford et al. (2015), as in pytorch/examples: z ~ N(0, I) straight into the stack."""

    def __init__(self, nz: int = 100, ngf: int = 64, body: str = "dcgan", channels: int = 3):
        super().__init__()
        self.nz = nz
        self.main = BODIES[body](nz, ngf, channels)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Latent:
        return Latent(z=torch.randn(n, self.nz, generator=generator))

    def forward(self, latent: Latent) -> Tensor:
        return self.main(latent.z[:, :, None, None])


class DeLiGANGenerator(nn.Module):
    """Gurumurthy et al. (2017): a learned Gaussian mixture latent, one component per sample."""

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 64,
        components: int = 50,
        sigma_init: float = 0.2,
        body: str = "dcgan",
        channels: int = 3,
    ):
        super().__init__()
        self.nz = nz
        self.components = components
        self.mu = nn.Parameter(torch.empty(components, nz).uniform_(-1.0, 1.0))  # (K, nz)
        self.sigma = nn.Parameter(torch.full((components, nz), sigma_init))  # (K, nz)
        self.main = BODIES[body](nz, ngf, channels)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Latent:
        return Latent(
            z=torch.randn(n, self.nz, generator=generator),
            component=torch.randint(0, self.components, (n,), generator=generator),
        )

    def forward(self, latent: Latent) -> Tensor:
        k = latent.component
        z = self.mu[k] + self.sigma[k] * latent.z  # (B, nz), differentiable in mu and sigma
        return self.main(z[:, :, None, None])

    def regularizer(self) -> Tensor:
        """DeLiGAN's penalty that keeps the sigmas from collapsing to zero: mean (1 - sigma)^2."""
        return ((1.0 - self.sigma) ** 2).mean()


class ProposedGenerator(nn.Module):
    """DCGAN with the latent distribution adjustment layer and the Uniform(-1, 1) mean shift.

    Our reading of the paper's missing Eq. (1): the adjustment is a learned affine
    map A z + b from nz to N * nz (`expand` = N), reshaped into the first feature
    map (N * nz channels of 1x1). Eq. (3) then adds a mean m ~ U(-1, 1), drawn per
    sample and component, at training and at sampling. See docs/gan.md.
    """

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 64,
        expand: int = 2,
        mean_shift: bool = True,
        body: str = "dcgan",
        channels: int = 3,
    ):
        super().__init__()
        self.nz = nz
        self.width = expand * nz
        self.mean_shift = mean_shift
        self.adjust = nn.Linear(nz, self.width)
        # Start as a random projection that keeps unit variance, so the stack
        # first sees a plain normal latent and the layer learns away from it.
        nn.init.normal_(self.adjust.weight, 0.0, 1.0 / math.sqrt(nz))
        nn.init.zeros_(self.adjust.bias)
        self.main = BODIES[body](self.width, ngf, channels)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Latent:
        z = torch.randn(n, self.nz, generator=generator)
        shift = None
        if self.mean_shift:
            shift = torch.rand(n, self.width, generator=generator) * 2.0 - 1.0
        return Latent(z=z, shift=shift)

    def forward(self, latent: Latent) -> Tensor:
        h = self.adjust(latent.z)  # (B, N * nz)
        if latent.shift is not None:
            h = h + latent.shift
        return self.main(h[:, :, None, None])


class Discriminator(nn.Module):
    """The DCGAN discriminator; returns one logit per image. Spectral norm replaces BatchNorm."""

    def __init__(self, ndf: int = 64, spectral_norm: bool = False):
        super().__init__()

        def conv(cin: int, cout: int, stride: int, padding: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 4, stride, padding, bias=False)
            init_dcgan_weights(layer)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        def norm(channels: int) -> nn.Module:
            if spectral_norm:
                return nn.Identity()
            layer = nn.BatchNorm2d(channels)
            init_dcgan_weights(layer)
            return layer

        self.main = nn.Sequential(
            conv(3, ndf, 2, 1),  # (B, ndf, 32, 32)
            nn.LeakyReLU(0.2, inplace=True),
            conv(ndf, ndf * 2, 2, 1),  # (B, ndf*2, 16, 16)
            norm(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            conv(ndf * 2, ndf * 4, 2, 1),  # (B, ndf*4, 8, 8)
            norm(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            conv(ndf * 4, ndf * 8, 2, 1),  # (B, ndf*8, 4, 4)
            norm(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            conv(ndf * 8, 1, 1, 0),  # (B, 1, 1, 1)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.main(images).flatten()  # (B,) logits


Generator = DCGANGenerator | DeLiGANGenerator | ProposedGenerator


def build_generator(config: TrainConfig) -> Generator:
    body = {"body": config.body, "channels": config.channels}
    if config.model == "dcgan":
        return DCGANGenerator(config.nz, config.ngf, **body)
    if config.model == "deligan":
        return DeLiGANGenerator(config.nz, config.ngf, config.components, config.sigma_init, **body)
    return ProposedGenerator(config.nz, config.ngf, config.expand, config.mean_shift, **body)


def build_discriminator(config: TrainConfig) -> nn.Module:
    """The D a config names; every D maps (B, 3, 64, 64) images to (B,) or (B, K) logits."""
    if config.discriminator == "projected":
        from gan.projected import ProjectedDiscriminator  # loads pretrained weights: only if asked

        return ProjectedDiscriminator(
            config.ndf, config.projected_size, config.pixel_head, config.spectral_norm
        )
    return Discriminator(config.ndf, config.spectral_norm)
