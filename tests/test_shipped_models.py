"""The committed default generators: compact, loadable, and drawing the right mood."""

from pathlib import Path

import pytest
import torch

from gan import EmojiSampler, load_checkpoint

MODELS = Path(__file__).resolve().parent.parent / "models"
LABELS = ("positive", "negative")


@pytest.mark.parametrize("label", LABELS)
def test_shipped_checkpoint_is_a_compact_fp16_generator(label):
    payload = load_checkpoint(MODELS / f"{label}.pt", kind="generator")
    assert payload["config"]["label"] == label
    weights = payload["generator"]
    assert weights and all(
        t.dtype == torch.float16 for t in weights.values() if t.is_floating_point()
    )
    assert "discriminator" not in payload and "optimizer_g" not in payload


def test_shipped_checkpoints_fit_the_size_budget():
    assert sum((MODELS / f"{label}.pt").stat().st_size for label in LABELS) <= 20 * 1024 * 1024


@pytest.mark.parametrize("label", LABELS)
def test_shipped_checkpoint_samples_varied_seeded_emojis(label):
    sampler = EmojiSampler.from_checkpoint(MODELS / f"{label}.pt", "cpu")
    assert sampler.label == label
    first, again, other = sampler.sample_tensor([(7, 8), (7, 8), (8, 8)])
    assert first.shape == (8, 3, 64, 64)
    assert torch.equal(first, again)  # a seed is a reproducible emoji
    assert not torch.equal(first, other)
    assert first.std(dim=0).mean() > 0.05  # eight different emojis, not one collapsed mode
    assert first.std() > 0.2  # drawn shapes on a background, not a flat colour


@pytest.mark.parametrize("label", LABELS)
def test_shipped_generators_draw_few_washed_out_images(label):
    # Every real emoji has a pixel standard deviation above 0.31 (a drawn face on
    # white). A spectral-norm candidate drew 19% flat grey-green images below 0.3
    # and still scored well on FID and the judge; this catches that failure.
    sampler = EmojiSampler.from_checkpoint(MODELS / f"{label}.pt", "cpu")
    images = sampler.sample_tensor([(2026, 256)])[0]
    contrast = images.std(dim=(2, 3)).mean(dim=1)
    assert (contrast < 0.3).float().mean() <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("label", LABELS)
def test_shipped_generators_draw_their_mood(label):
    # The bar: at least 90% of samples classified as the right mood by the
    # domain judge. Needs the built data set (`moodmoji dataset build`).
    data = Path("data/emoji")
    if not (data / "manifest.csv").is_file():
        pytest.skip("needs the emoji data set: moodmoji dataset build")
    from gan.data import load_label_images
    from gan.metrics import Evaluator, generate, load_or_train_classifier
    from moodmoji.settings import CommonSettings

    cache = CommonSettings().cache_dir
    judge, _ = load_or_train_classifier(data, cache)
    sampler = EmojiSampler.from_checkpoint(MODELS / f"{label}.pt", "cpu")
    evaluator = Evaluator(
        load_label_images(data, label), "cpu", cache, ("class_consistency",), judge, label
    )
    fake = generate(sampler.generator, 512, seed=2026, device=torch.device("cpu"))
    assert evaluator.score(fake)["class_consistency"] >= 0.90
