"""Head training on small synthetic features, the head's file round trip, the feature cache."""

import pytest
import torch

from sentiment.encoder import SentenceEncoder, packaged_encoder_dir
from sentiment.features import cached_features
from sentiment.head import DOMAINS, LABELS, HeadMetadata, load_head, save_head
from sentiment.train import (
    Examples,
    HeadTraining,
    calibrate_neutral_threshold,
    fit_head,
    head_probabilities,
)

EMBEDDING = 16


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tensors this small gain nothing from threads; on shared cores extra
    # threads only spin against each other (6x slower here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _examples(count: int, seed: int) -> Examples:
    """Embeddings whose first component carries the mood and second the domain; VADER columns
    follow the mood on "tweets" only, as the real lexicon roughly does."""
    generator = torch.Generator().manual_seed(seed)
    moods = torch.randint(-1, 2, (count,), generator=generator)  # -1: near zero
    domains = torch.randint(0, len(DOMAINS), (count,), generator=generator)
    embedding = torch.randn(count, EMBEDDING, generator=generator) * 0.1
    sign = torch.where(moods == 1, 1.0, torch.where(moods == 0, -1.0, 0.0))
    embedding[:, 0] += sign
    embedding[:, 1] += (domains == DOMAINS.index("tweets")).float() * 2
    compound = torch.where(domains == 0, 0.6 * sign, 0.2 * torch.randn(count, generator=generator))
    lexicon = torch.stack([compound, compound.clamp(min=0), (-compound).clamp(min=0),
                           1 - compound.abs()], dim=1)  # fmt: skip
    return Examples(torch.cat([embedding, lexicon], dim=1), moods, domains)


def test_fit_head_learns_the_mood_and_a_usable_neutral_band(tmp_path):
    train, validation = _examples(800, seed=1), _examples(300, seed=2)
    head, score = fit_head(
        train,
        validation,
        HeadTraining(hidden=8, epochs=10, batch_size=32, learning_rate=1e-2, gate_steps=100),
        seed=4,
    )
    assert score > 0.9
    assert float(head.lexicon_scale) > 1.0  # tweets' compound does predict their mood
    probabilities = head_probabilities(head, validation.features)
    polarities = [LABELS[m] if m >= 0 else "neutral" for m in validation.moods.tolist()]
    threshold, three_way = calibrate_neutral_threshold(probabilities, polarities)
    assert 0.5 < threshold < 0.96
    assert three_way > 0.6  # well above the 1/3 of guessing

    metadata = HeadMetadata(EMBEDDING + 4, 8, threshold, "test", 32)
    save_head(head, metadata, tmp_path)
    loaded, loaded_metadata = load_head(tmp_path)
    assert loaded_metadata == metadata
    with torch.no_grad():
        assert torch.equal(loaded(validation.features), head(validation.features))


def test_features_are_cached_per_texts(tmp_path):
    encoder = SentenceEncoder(packaged_encoder_dir(), torch.device("cpu"), 32, 8)
    texts = ["great stuff", "awful", "meeting at noon"]
    first = cached_features(encoder, texts, tmp_path)
    assert first.shape == (3, encoder.dimension + 4)
    assert len(list(tmp_path.glob("features-*.pt"))) == 1
    assert torch.equal(cached_features(encoder, texts, tmp_path), first)
    cached_features(encoder, [*texts, "one more"], tmp_path)
    assert len(list(tmp_path.glob("features-*.pt"))) == 2
