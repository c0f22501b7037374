"""VADER lexicon scores: the baseline, and extra features for the head.

VADER was tuned on exactly the tweets in the rating corpus, and its hand-made
rules (negation, "but", caps, "!!!") catch what a frozen sentence embedding
blurs; giving the head its four scores lets it lean on the lexicon where the
lexicon is reliable.
"""

from functools import lru_cache

import numpy as np
import torch
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

FEATURES = ("compound", "pos", "neg", "neu")
# VADER's documented cut-offs for its own three-way label.
VADER_NEUTRAL_BAND = 0.05


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def vader_array(texts: list[str]) -> np.ndarray:
    """(len(texts), 4) float32: compound, pos, neg, neu per text."""
    analyzer = _analyzer()
    rows = []
    for text in texts:
        scores = analyzer.polarity_scores(text)
        rows.append([scores[name] for name in FEATURES])
    return np.array(rows, dtype=np.float32).reshape(len(texts), len(FEATURES))


def vader_scores(texts: list[str]) -> torch.Tensor:
    """`vader_array` as a tensor."""
    return torch.from_numpy(vader_array(texts))


def vader_label(compound: float, neutral_band: float = VADER_NEUTRAL_BAND) -> str:
    if compound >= neutral_band:
        return "positive"
    if compound <= -neutral_band:
        return "negative"
    return "neutral"
