"""Clean, score in batches, apply the neutral band: the one path every caller uses."""

import threading
from collections.abc import Sequence

from sentiment.backends import Backend, load_backend
from sentiment.cleaning import clean_message
from sentiment.prediction import Prediction
from sentiment.settings import SentimentSettings


class Classifier:
    def __init__(
        self,
        backend: Backend,
        neutral_threshold: float,
        max_chars: int,
        suggest_threshold: float | None = None,
    ):
        self.backend = backend
        self.neutral_threshold = neutral_threshold
        self.suggest_threshold = suggest_threshold
        self.max_chars = max_chars
        # One forward pass at a time: parallel passes on a small CPU only
        # contend, and fast tokenizers shared across threads have failed with
        # "Already borrowed" in some versions. Threaded callers queue here.
        self._lock = threading.Lock()

    def classify(self, texts: Sequence[str | bytes]) -> list[Prediction]:
        if isinstance(texts, str | bytes):
            raise TypeError("classify takes a list of messages; wrap a single one in a list")
        cleaned = [clean_message(_as_text(text), self.max_chars) for text in texts]
        # Nothing left to read (empty, whitespace, only a link or a mention):
        # no mood, and no reason to run the model on an empty string.
        readable = [text for text in cleaned if text]
        with self._lock:
            scored = iter(self.backend.polarity_scores(readable) if readable else [])
        undecided = dict.fromkeys(self.backend.classes, 1.0 / len(self.backend.classes))
        predictions = []
        for text in cleaned:
            if text:
                predictions.append(
                    Prediction.from_scores(
                        next(scored), self.neutral_threshold, self.suggest_threshold
                    )
                )
            else:
                predictions.append(Prediction("neutral", max(undecided.values()), dict(undecided)))
        return predictions


def _as_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"a message must be str or bytes, not {type(text).__name__}")
    return text


def load_classifier(settings: SentimentSettings | None = None) -> Classifier:
    """A classifier built from settings (MOODMOJI_SENTIMENT_* and `.env` by default)."""
    settings = settings or SentimentSettings()
    backend = load_backend(settings)
    threshold = settings.sentiment_neutral_threshold
    if threshold is None:
        threshold = backend.default_neutral_threshold
    suggest = settings.sentiment_suggest_threshold
    if suggest is None:
        suggest = backend.default_suggest_threshold
    return Classifier(backend, threshold, settings.sentiment_max_chars, suggest)


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """Built on first use and then shared (loading the encoder takes about a second)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = load_classifier()
        return _default
