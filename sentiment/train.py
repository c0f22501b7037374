"""`moodmoji sentiment train`: fit the head on frozen MiniLM features + VADER scores.

Three parts, each from the training split: the domain gate from every
sentence's domain, the lexicon scale from the clearly rated tweets, the MLP
from the clearly rated sentences (plus near-zero ones as 50/50 targets). The
MLP epoch is the one whose whole mixture scores best on the validation split;
the neutral threshold is then calibrated on the whole validation split
(near-zero ratings as "neutral") to maximise three-way macro-F1.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from moodmoji.device import resolve_device
from sentiment.cleaning import clean_message
from sentiment.data import CLEAR_RATING, RatedSentence, fetch_corpus, load_sentences
from sentiment.encoder import SentenceEncoder, packaged_encoder_dir
from sentiment.features import cached_features
from sentiment.head import DOMAINS, LABELS, HeadMetadata, MoodHead, save_head
from sentiment.metrics import macro_f1
from sentiment.prediction import Prediction
from sentiment.settings import SentimentSettings

log = logging.getLogger(__name__)


@dataclass
class HeadTraining:
    hidden: int = 64
    dropout: float = 0.3
    epochs: int = 40
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    gate_steps: int = 300
    neutral_weight: float = 0.5


def corpus_features(
    settings: SentimentSettings,
) -> tuple[list[RatedSentence], torch.Tensor, SentenceEncoder]:
    """Every rated sentence, its features (cached), and the encoder that made them."""
    cache = settings.sentiment_cache_dir
    sentences = load_sentences(fetch_corpus(cache), settings.sentiment_seed)
    encoder = SentenceEncoder(
        settings.sentiment_encoder_dir or packaged_encoder_dir(),
        resolve_device(settings.resolved_device),
        max_length=settings.sentiment_max_length,
        batch_size=settings.sentiment_batch_size,
    )
    cleaned = [clean_message(s.text, settings.sentiment_max_chars) for s in sentences]
    return sentences, cached_features(encoder, cleaned, cache), encoder


@dataclass
class Examples:
    """Features with their targets: mood index in LABELS (-1 when near zero) and domain index."""

    features: torch.Tensor
    moods: torch.Tensor
    domains: torch.Tensor

    @property
    def clear(self) -> torch.Tensor:
        return self.moods >= 0


def fit_domain_gate(head: MoodHead, train: Examples, config: HeadTraining) -> None:
    """Which corpus a text resembles, from its embedding alone (all training sentences)."""
    optimiser = torch.optim.AdamW(head.domain.parameters(), lr=1e-2, weight_decay=1e-3)
    for _step in range(config.gate_steps):
        loss = torch.nn.functional.cross_entropy(head.domain_logits(train.features), train.domains)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def fit_lexicon_scale(head: MoodHead, train: Examples) -> None:
    """The sigmoid(scale * compound) that best fits the clearly rated training tweets."""
    tweets = train.clear & (train.domains == DOMAINS.index("tweets"))
    compound = train.features[tweets, head.embedding_size]
    positive = (train.moods[tweets] == LABELS.index("positive")).float()
    scales = torch.linspace(0.5, 20.0, 40)
    losses = [
        torch.nn.functional.binary_cross_entropy_with_logits(scale * compound, positive)
        for scale in scales
    ]
    head.lexicon_scale.fill_(float(scales[int(torch.stack(losses).argmin())]))


def fit_head(
    train: Examples, validation: Examples, config: HeadTraining, seed: int
) -> tuple[MoodHead, float]:
    """Gate, lexicon scale, then the MLP; keep the MLP epoch whose mixture is best on validation."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = MoodHead(train.features.shape[1], config.hidden, config.dropout)
    head.feature_mean.copy_(train.features.mean(0))
    head.feature_std.copy_(train.features.std(0).clamp(min=1e-6))
    fit_domain_gate(head, train, config)
    fit_lexicon_scale(head, train)
    # Clear sentences teach their mood; near-zero ones (weighted by
    # config.neutral_weight) teach "no mood here" as an even 50/50 split, so
    # factual chat ("meeting moved to 5pm") lands inside the neutral band.
    features = train.features
    targets = torch.nn.functional.one_hot(train.moods.clamp(min=0), len(LABELS)).float()
    targets[~train.clear] = 1.0 / len(LABELS)
    weights = torch.where(train.clear, 1.0, config.neutral_weight)
    val_features = validation.features[validation.clear]
    truth = [LABELS[t] for t in validation.moods[validation.clear].tolist()]
    optimiser = torch.optim.AdamW(
        head.mood.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best_score, best_state = -1.0, None
    for _epoch in range(config.epochs):
        head.train()
        for rows in torch.randperm(len(features), generator=generator).split(config.batch_size):
            losses = torch.nn.functional.cross_entropy(
                head.mood_logits(features[rows]), targets[rows], reduction="none"
            )
            loss = (losses * weights[rows]).sum() / weights[rows].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        head.eval()
        with torch.no_grad():
            guessed = [LABELS[i] for i in head(val_features).argmax(-1).tolist()]
        score = macro_f1(truth, guessed, LABELS)
        if score > best_score:
            best_score = score
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
    assert best_state is not None
    head.load_state_dict(best_state)
    return head.eval(), best_score


def calibrate_neutral_threshold(
    probabilities: list[dict[str, float]], polarities: list[str]
) -> tuple[float, float]:
    """The threshold (0.50..0.95) with the best three-way macro-F1, and that F1."""
    best = (0.5, -1.0)
    for step in range(46):
        threshold = 0.5 + step / 100
        guessed = [Prediction.from_scores(p, threshold).label for p in probabilities]
        score = macro_f1(polarities, guessed, ("positive", "negative", "neutral"))
        if score > best[1] + 1e-9:
            best = (threshold, score)
    return best


def head_probabilities(head: MoodHead, features: torch.Tensor) -> list[dict[str, float]]:
    with torch.no_grad():
        rows = head(features).tolist()
    return [dict(zip(LABELS, row, strict=True)) for row in rows]


def train(settings: SentimentSettings, out_dir: Path, config: HeadTraining) -> HeadMetadata:
    sentences, features, encoder = corpus_features(settings)

    def examples(split: str) -> tuple[list[int], Examples]:
        rows = [i for i, s in enumerate(sentences) if s.split == split]
        moods = [
            LABELS.index(sentences[i].polarity) if sentences[i].polarity in LABELS else -1
            for i in rows
        ]
        domains = [DOMAINS.index(sentences[i].domain) for i in rows]
        return rows, Examples(features[rows], torch.tensor(moods), torch.tensor(domains))

    _, train_set = examples("train")
    validation_rows, validation_set = examples("validation")
    log.info("training the head on %d clear sentences", int(train_set.clear.sum()))
    head, val_f1 = fit_head(train_set, validation_set, config, settings.sentiment_seed)
    threshold, three_way_f1 = calibrate_neutral_threshold(
        head_probabilities(head, validation_set.features),
        [sentences[i].polarity for i in validation_rows],
    )
    log.info("validation macro-F1 %.3f; neutral threshold %.2f", val_f1, threshold)
    metadata = HeadMetadata(
        in_features=features.shape[1],
        hidden=config.hidden,
        neutral_threshold=threshold,
        encoder_fingerprint=encoder.fingerprint,
        max_length=settings.sentiment_max_length,
        training={
            **vars(config),
            "seed": settings.sentiment_seed,
            "clear_rating": CLEAR_RATING,
            "train_sentences": int(train_set.clear.sum()),
            "lexicon_scale": round(float(head.lexicon_scale), 3),
            "validation_binary_macro_f1": round(val_f1, 4),
            "validation_three_way_macro_f1": round(three_way_f1, 4),
            "trained_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        },
    )
    save_head(head, metadata, out_dir)
    return metadata
