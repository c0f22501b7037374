"""GAN: data, models (DCGAN, DeLiGAN, Proposed), training, sampling, metrics.

Pure ML: knows no Redis and no Discord. The public surface is below; the emoji
data set builder lives in `gan.emoji_set`.
"""

from gan.checkpoint import CheckpointError, export_generator, load_checkpoint
from gan.config import MODELS, PRESETS, TrainConfig, make_config
from gan.data import (
    LABELS,
    DataError,
    images_to_tensor,
    load_label_images,
    make_procedural_dataset,
    tensor_to_images,
)
from gan.device import resolve_device
from gan.models import (
    DCGANGenerator,
    DeLiGANGenerator,
    Discriminator,
    Latent,
    ProposedGenerator,
    build_discriminator,
    build_generator,
)
from gan.sample import EmojiSampler, png_bytes, sample_emojis
from gan.train import read_log, train

__all__ = [
    "LABELS",
    "MODELS",
    "PRESETS",
    "CheckpointError",
    "DCGANGenerator",
    "DataError",
    "DeLiGANGenerator",
    "Discriminator",
    "EmojiSampler",
    "Latent",
    "ProposedGenerator",
    "TrainConfig",
    "build_discriminator",
    "build_generator",
    "export_generator",
    "images_to_tensor",
    "load_checkpoint",
    "load_label_images",
    "make_config",
    "make_procedural_dataset",
    "png_bytes",
    "read_log",
    "resolve_device",
    "sample_emojis",
    "tensor_to_images",
    "train",
]
