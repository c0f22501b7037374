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
    clear mood).

    `suggest` says whether an unasked-for emoji (the bot's auto-suggest) may
    answer it: a mood at or above the suggest threshold, which is stricter
    than the neutral one because a suggestion nobody wanted costs more than a
    missed one. Training sets it on validation tweets for a chosen share of
    false alarms (`HeadTraining.suggest_false_alarms`).
    """

    label: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    suggest: bool = False

    @property
    def leaning(self) -> str:
        """The likelier of positive and negative: the mood to draw when one must be drawn."""
        if self.label in MOODS:
            return self.label
        return max(MOODS, key=lambda mood: self.scores.get(mood, 0.0))

    @classmethod
    def from_scores(
        cls,
        scores: dict[str, float],
        neutral_threshold: float,
        suggest_threshold: float | None = None,
    ) -> "Prediction":
        """`suggest_threshold` None: every mood may be suggested (the neutral band only)."""
        best = max(scores, key=scores.__getitem__)
        confidence = scores[best]
        label = "neutral" if confidence < neutral_threshold else best
        bar = neutral_threshold if suggest_threshold is None else suggest_threshold
        suggest = label in MOODS and confidence >= bar
        return cls(label=label, confidence=confidence, scores=scores, suggest=suggest)
