"""The training configuration: every hyperparameter of a run, typed and saved in each checkpoint."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelName = Literal["dcgan", "deligan", "proposed"]
MODELS: tuple[ModelName, ...] = ("dcgan", "deligan", "proposed")
BODIES = ("dcgan", "fastgan")
DISCRIMINATORS = ("dcgan", "projected")
LOSSES = ("bce", "hinge")

# Presets fill in the optimiser; anything passed explicitly wins over them.
PRESETS: dict[str, dict] = {
    # As printed in the paper: Adam, lr 1e-2, batch 35 (1e-2 is unusually high and may be a typo).
    "paper": {"lr": 1e-2, "batch_size": 35},
    # The DCGAN defaults (Radford et al.; pytorch/examples dcgan), which train reliably.
    "stable": {"lr": 2e-4, "batch_size": 64},
}


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelName = "proposed"
    label: str = "positive"
    preset: str = "stable"

    # Networks. ngf/ndf scale every layer, so tests can use tiny widths.
    nz: int = Field(100, ge=1, description="size of the normal latent z")
    ngf: int = Field(64, ge=1, description="generator width")
    ndf: int = Field(64, ge=1, description="discriminator width")
    spectral_norm: bool = Field(
        False, description="spectral normalisation in D (instead of BatchNorm)"
    )
    # The defaults are the paper's networks; a checkpoint written before a field
    # existed loads with its default, so these must stay what older runs used.
    body: Literal["dcgan", "fastgan"] = Field(
        "dcgan", description="G's convolutional body: DCGAN deconvolutions or FastGAN-lite"
    )
    channels: Literal[3, 4] = Field(
        3, description="3: RGB on white; 4: RGBA, the emoji's own transparency"
    )
    discriminator: Literal["dcgan", "projected"] = Field(
        "dcgan", description="the DCGAN D, or a projected D on frozen EfficientNet-lite0 features"
    )
    projected_size: int = Field(
        128, ge=32, description="projected D: images are resized to this many pixels first"
    )
    pixel_head: bool = Field(True, description="projected D: also judge the pixels (colour)")
    loss: Literal["bce", "hinge"] = Field(
        "bce", description="adversarial loss: non-saturating BCE (DCGAN) or hinge (Projected GAN)"
    )
    # Proposed GAN.
    expand: int = Field(2, ge=1, description="N: the adjustment layer maps nz to N * nz")
    mean_shift: bool = Field(True, description="add mu ~ U(-1, 1) to the adjusted latent")
    # DeLiGAN.
    components: int = Field(50, ge=1, description="Gaussian mixture components")
    sigma_init: float = Field(0.2, gt=0, description="initial component standard deviation")
    sigma_weight: float = Field(1.0, ge=0, description="weight of the (1 - sigma)^2 regulariser")

    # Optimisation.
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    batch_size: int = Field(64, ge=2)
    epochs: int = Field(100, ge=1)
    seed: int = 0

    # Small-data helpers.
    flip: bool = Field(True, description="random horizontal flips of real images")
    diffaugment: str = Field("", description="DiffAugment policy, e.g. 'color,translation,cutout'")
    ema: bool = Field(False, description="keep an exponential moving average of G for sampling")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    # Rumi-GAN (Asokan & Seelamantula, NeurIPS 2020): D also learns to call the
    # other labels' real images fake, which teaches G what its label is not.
    other_labels_weight: float = Field(
        0.0, ge=0, description="weight of the other labels' real images shown to D as fakes"
    )

    # Evaluation during training (FID/KID against all real images of the label).
    eval_every: int = Field(10, ge=0, description="epochs between evaluations; 0 turns it off")
    eval_samples: int = Field(256, ge=2, description="generated images per evaluation")


def make_config(preset: str = "stable", **overrides) -> TrainConfig:
    """A config from a preset, with explicit overrides (None values are ignored)."""
    if preset not in PRESETS:
        from moodmoji.errors import MoodmojiError

        raise MoodmojiError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(preset=preset, **values)
