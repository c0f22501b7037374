"""What `classify` returns. Torch-free, so the bot can import it."""

from dataclasses import dataclass, field

LABELS = ("positive", "negative", "neutral")
MOODS = ("positive", "negative")  # what the GAN can draw


@dataclass(frozen=True)
class Prediction:
    """A message's mood.

    `scores` holds the backend's probability per class, summing to 1 (positive,
    negative and neutral for the default head, which learned neutral from
    data; an hf model may have only the two moods). `confidence` is the
    probability of the most likely class; when that class is a mood but its
    probability falls below the neutral threshold, `label` is `neutral` (no
    clear mood) and the bot suggests nothing.
    """

    label: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def leaning(self) -> str:
        """The likelier of positive and negative: the mood to draw when one must be drawn."""
        if self.label in MOODS:
            return self.label
        return max(MOODS, key=lambda mood: self.scores.get(mood, 0.0))

    @classmethod
    def from_scores(cls, scores: dict[str, float], neutral_threshold: float) -> "Prediction":
        best = max(scores, key=scores.__getitem__)
        confidence = scores[best]
        label = "neutral" if confidence < neutral_threshold else best
        return cls(label=label, confidence=confidence, scores=scores)
