"""GAN: data, models (DCGAN, DeLiGAN, Proposed), training, sampling, metrics.

Pure ML: knows no Redis and no Discord. The emoji data set builder lives in
`gan.emoji_set`. Names below load on first use, so importing `gan` (or
`gan.emoji_set`) does not pull in torch until a model is actually needed.
"""

import importlib

_EXPORTS = {
    "CheckpointError": "gan.checkpoint",
    "export_generator": "gan.checkpoint",
    "load_checkpoint": "gan.checkpoint",
    "MODELS": "gan.config",
    "PRESETS": "gan.config",
    "TrainConfig": "gan.config",
    "make_config": "gan.config",
    "LABELS": "gan.data",
    "DataError": "gan.data",
    "images_to_tensor": "gan.data",
    "load_label_images": "gan.data",
    "make_procedural_dataset": "gan.data",
    "tensor_to_images": "gan.data",
    "resolve_device": "moodmoji.device",
    "to_rgb_square": "gan.images",
    "DCGANGenerator": "gan.models",
    "DeLiGANGenerator": "gan.models",
    "Discriminator": "gan.models",
    "Latent": "gan.models",
    "ProposedGenerator": "gan.models",
    "build_discriminator": "gan.models",
    "build_generator": "gan.models",
    "EmojiSampler": "gan.sample",
    "encode_emojis": "gan.sample",
    "png_bytes": "gan.sample",
    "sample_emojis": "gan.sample",
    "read_log": "gan.training",
    "train": "gan.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
