"""Shared fixtures: a procedural data set and tiny GAN configurations (CPU, seconds)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def procedural_data(tmp_path_factory) -> Path:
    """24 smiley faces per label: mouths up for positive, down for negative."""
    from gan import make_procedural_dataset

    return make_procedural_dataset(tmp_path_factory.mktemp("procedural"), per_label=24, seed=0)


@pytest.fixture
def tiny_config():
    """A factory for configs small enough to train in a second on the CPU."""
    from gan import make_config

    def make(**overrides):
        values = {
            "ngf": 8,
            "ndf": 8,
            "nz": 16,
            "epochs": 2,
            "batch_size": 16,
            "eval_every": 0,
            **overrides,
        }
        return make_config("stable", **values)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, procedural_data) -> Path:
    """A trained (two epochs) tiny Proposed GAN for the positive label."""
    from gan import make_config, train

    config = make_config(
        "stable",
        model="proposed",
        label="positive",
        ngf=8,
        ndf=8,
        nz=16,
        epochs=2,
        batch_size=16,
        eval_every=0,
    )
    return train(
        config, procedural_data, tmp_path_factory.mktemp("tiny-run"), device="cpu", progress=False
    )
