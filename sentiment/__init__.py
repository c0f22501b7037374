"""Text to mood: label and confidence for chat messages.

    from sentiment import classify
    classify(["I love this!", "ugh"])[0].label   # "positive"

Importing this package does not import torch; the first `classify` call (or
`load_classifier`) loads the encoder and head, so the bot can import the
names it needs cheaply.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sentiment.cleaning import clean_message
from sentiment.prediction import Prediction
from sentiment.settings import SentimentSettings

if TYPE_CHECKING:
    from sentiment.classifier import Classifier

__all__ = ["Prediction", "SentimentSettings", "classify", "clean_message", "load_classifier"]


def load_classifier(settings: SentimentSettings | None = None) -> "Classifier":
    """A fresh classifier for `settings` (default: MOODMOJI_SENTIMENT_* and `.env`)."""
    from sentiment.classifier import load_classifier as _load

    return _load(settings)


def classify(
    texts: Sequence[str | bytes], classifier: "Classifier | None" = None
) -> list[Prediction]:
    """One Prediction per message, in order; uses a shared default classifier if none given."""
    from sentiment.classifier import default_classifier

    return (classifier or default_classifier()).classify(texts)
