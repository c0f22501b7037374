"""Training, resuming, sampling and exporting on the procedural data set."""

import json
import shutil

import numpy as np
import pytest
import torch

import gan
from gan import EmojiSampler, export_generator, load_checkpoint, read_log, train


def test_a_few_epochs_lower_the_discriminator_loss(tiny_config, procedural_data, tmp_path):
    config = tiny_config(model="dcgan", epochs=6)
    train(config, procedural_data, tmp_path, device="cpu", progress=False)
    records = read_log(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["loss_d"] < records[0]["loss_d"]
    assert records[-1]["d_real"] > records[-1]["d_fake"]  # D tells real from fake


@pytest.mark.parametrize("model", ["dcgan", "deligan", "proposed"])
def test_every_model_trains_and_writes_checkpoint_log_and_config(
    model, tiny_config, procedural_data, tmp_path
):
    config = tiny_config(
        model=model, label="negative", epochs=1, ema=True, diffaugment="color,translation,cutout"
    )
    path = train(config, procedural_data, tmp_path, device="cpu", progress=False)
    payload = load_checkpoint(path, kind="training")
    assert payload["epoch"] == 1 and payload["config"]["model"] == model
    for key in ("generator", "discriminator", "generator_ema", "optimizer_g", "optimizer_d", "rng"):
        assert payload[key] is not None
    assert json.loads((tmp_path / "config.json").read_text())["label"] == "negative"
    assert len(read_log(tmp_path)) == 1


@pytest.mark.parametrize("other_labels_weight", [0.0, 1.0])
def test_resuming_reaches_the_same_state_as_an_uninterrupted_run(
    other_labels_weight, tiny_config, procedural_data, tmp_path
):
    config = tiny_config(
        model="proposed",
        epochs=3,
        ema=True,
        diffaugment="translation",
        other_labels_weight=other_labels_weight,
    )
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
    assert a["step"] == b["step"]
    for part in ("generator", "discriminator", "generator_ema"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs"
    losses = lambda run: [r["loss_d"] for r in read_log(run)]  # noqa: E731
    assert losses(tmp_path / "straight") == losses(interrupted)


def test_resuming_with_other_settings_is_refused(tiny_config, procedural_data, tmp_path):
    train(tiny_config(epochs=1), procedural_data, tmp_path, device="cpu", progress=False)
    with pytest.raises(gan.CheckpointError, match=r"other settings.*ngf 8 -> 16"):
        train(
            tiny_config(epochs=2, ngf=16), procedural_data, tmp_path, device="cpu", progress=False
        )


def test_a_seed_gives_the_same_emojis_alone_or_batched(tiny_checkpoint):
    sampler = EmojiSampler.from_checkpoint(tiny_checkpoint, device="cpu")
    assert sampler.label == "positive" and len(sampler.version) == 12
    batched = sampler.sample_batch([(1, 2), (42, 3)], size=128)
    alone = sampler.sample_batch([(42, 3)], size=128)
    assert [len(group) for group in batched] == [2, 3]
    assert batched[1][0].size == (128, 128)
    for x, y in zip(batched[1], alone[0], strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(batched[0][0]), np.asarray(batched[1][0]))


def test_an_rgba_fastgan_gives_the_same_transparent_emojis_alone_or_batched(
    tiny_config, procedural_data, tmp_path
):
    config = tiny_config(body="fastgan", channels=4, epochs=1)
    path = train(config, procedural_data, tmp_path, device="cpu", progress=False)
    sampler = EmojiSampler.from_checkpoint(path, device="cpu")
    batched = sampler.sample_batch([(1, 5), (42, 3)], size=128)[1]
    alone = sampler.sample_batch([(42, 3)], size=128)[0]
    assert all(image.mode == "RGBA" for image in alone)
    for x, y in zip(batched, alone, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_exported_generator_is_fp16_and_samples_like_the_original(tiny_checkpoint, tmp_path):
    exported = export_generator(tiny_checkpoint, tmp_path / "positive.pt")
    payload = load_checkpoint(exported, kind="generator")
    assert all(
        t.dtype == torch.float16 for t in payload["generator"].values() if t.is_floating_point()
    )
    assert "discriminator" not in payload
    full = EmojiSampler.from_checkpoint(tiny_checkpoint, "cpu").sample_tensor([(3, 4)])[0]
    compact = EmojiSampler.from_checkpoint(exported, "cpu").sample_tensor([(3, 4)])[0]
    assert (full - compact).abs().max() < 0.05  # fp16 rounding only


def test_sample_emojis_returns_png_bytes(tiny_checkpoint):
    pngs = gan.sample_emojis(
        tiny_checkpoint, "positive", n=2, seed=5, size=128, as_png=True, device="cpu"
    )
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG") for p in pngs)
    with pytest.raises(gan.CheckpointError, match="draws positive emojis, not negative"):
        gan.sample_emojis(tiny_checkpoint, "negative", device="cpu")


def test_the_ema_generator_follows_g_from_the_first_steps(tiny_config, procedural_data, tmp_path):
    config = tiny_config(model="proposed", epochs=2, ema=True)
    torch.manual_seed(config.seed)
    initial = gan.build_generator(config).state_dict()
    payload = load_checkpoint(
        train(config, procedural_data, tmp_path, device="cpu", progress=False)
    )
    g, ema = payload["generator"], payload["generator_ema"]
    name = "adjust.weight"
    # With a plain 0.999 decay the EMA would still be ~99.6% the initial weights after 4 steps.
    assert (ema[name] - g[name]).norm() < (initial[name] - g[name]).norm() / 2


def test_a_new_run_can_start_from_another_runs_generator(
    tiny_config, procedural_data, tiny_checkpoint, tmp_path
):
    start = load_checkpoint(tiny_checkpoint)["generator"]
    # A vanishing learning rate: after one epoch G still holds the weights it started from.
    config = tiny_config(model="proposed", epochs=1, lr=1e-12)
    tuned = load_checkpoint(
        train(
            config,
            procedural_data,
            tmp_path,
            device="cpu",
            progress=False,
            init_generator=tiny_checkpoint,
        )
    )
    weight = "adjust.weight"
    assert torch.allclose(tuned["generator"][weight], start[weight], atol=1e-6)
    # Without it, a run starts from its own seed's random weights.
    config = config.model_copy(update={"seed": 5})
    fresh = load_checkpoint(
        train(config, procedural_data, tmp_path / "fresh", device="cpu", progress=False)
    )
    assert not torch.allclose(fresh["generator"][weight], start[weight], atol=1e-3)


def _discriminator_gap(run, own, other) -> float:
    """How much more 'real' a run's D finds the label's own images than the other label's."""
    payload = load_checkpoint(run / "checkpoint.pt", kind="training")
    discriminator = gan.build_discriminator(gan.TrainConfig(**payload["config"]))
    discriminator.load_state_dict(payload["discriminator"])
    with torch.no_grad():
        own_prob, other_prob = (
            torch.sigmoid(discriminator.eval()(x)).mean().item() for x in (own, other)
        )
    return own_prob - other_prob


def test_other_labels_weight_teaches_d_to_reject_the_other_mood(
    tiny_config, procedural_data, tmp_path
):
    # Procedural faces differ only in the mouth, so a plain D accepts both moods
    # alike; with the other label shown as fake (Rumi-GAN) it must tell them apart.
    own = gan.load_label_images(procedural_data, "positive")
    other = gan.load_label_images(procedural_data, "negative")
    for weight in (0.0, 1.0):
        config = tiny_config(model="dcgan", epochs=16, other_labels_weight=weight)
        train(config, procedural_data, tmp_path / str(weight), device="cpu", progress=False)
    plain_gap = _discriminator_gap(tmp_path / "0.0", own, other)
    rumi_gap = _discriminator_gap(tmp_path / "1.0", own, other)
    assert rumi_gap > 0.3
    assert rumi_gap > plain_gap + 0.3


def test_other_labels_weight_needs_the_other_labels_images(tiny_config, procedural_data, tmp_path):
    only_positive = tmp_path / "data"
    shutil.copytree(procedural_data / "positive", only_positive / "positive")
    config = tiny_config(other_labels_weight=1.0)
    with pytest.raises(gan.DataError, match="negative"):
        train(config, only_positive, tmp_path / "run", device="cpu", progress=False)
