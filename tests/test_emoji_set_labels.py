"""Labelling rules: ranking thresholds, the sub-group fallback, which emojis count as faces."""

import pytest

from gan.emoji_set.labels import (
    NEGATIVE,
    POSITIVE,
    LabelRule,
    RankingCounts,
    is_mood_face,
    label_faces,
    load_emoji_sentiment_ranking,
    rule_agreement,
)
from gan.emoji_set.unicode_data import Emoji, codepoint_key, hex_key


def face(codepoint: str, subgroup: str, name: str = "", group: str = "smileys-emotion") -> Emoji:
    char = "".join(chr(int(part, 16)) for part in codepoint.split("-"))
    return Emoji(codepoint, char, name or f"face {codepoint}", group, subgroup)


def counts(positive: int, neutral: int, negative: int) -> RankingCounts:
    return RankingCounts(negative=negative, neutral=neutral, positive=positive)


def test_codepoint_keys_ignore_the_emoji_presentation_selector():
    assert codepoint_key("☺️") == codepoint_key("☺") == "263a"
    assert hex_key("1F636-200D-1F32B-FE0F") == "1f636-200d-1f32b"
    assert hex_key("263a_fe0f") == "263a"


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        (counts(positive=13, neutral=7, negative=0), POSITIVE),  # score 0.65
        (counts(positive=8, neutral=10, negative=2), POSITIVE),  # exactly 0.30
        (counts(positive=7, neutral=11, negative=2), None),  # 0.25: ambiguous, dropped
        (counts(positive=2, neutral=17, negative=1), None),  # 0.05: ambiguous, dropped
        (counts(positive=5, neutral=10, negative=5), NEGATIVE),  # exactly 0.00
        (counts(positive=2, neutral=6, negative=12), NEGATIVE),
    ],
)
def test_ranking_thresholds_decide_faces_with_enough_tweets(ranking, expected):
    # A face-smiling emoji: the sub-group would say positive, but the ranking speaks first.
    [labelled] = label_faces([face("1f600", "face-smiling")], {"1f600": ranking})
    assert labelled.how == "ranking"
    assert labelled.label == expected
    assert labelled.score == pytest.approx((ranking.positive - ranking.negative) / 20)


def test_the_sub_group_decides_when_the_ranking_has_too_few_tweets_or_none():
    rare = counts(positive=0, neutral=9, negative=10)  # N = 19, would be negative
    faces = [
        face("1f617", "face-affection"),
        face("1f915", "face-unwell"),
        face("1f928", "face-neutral-skeptical"),
    ]
    labelled = label_faces(faces, {"1f617": rare})
    assert [(f.label, f.how) for f in labelled] == [
        (POSITIVE, "subgroup"),
        (NEGATIVE, "subgroup"),
        (None, "subgroup"),  # no clear mood in this sub-group: dropped
    ]
    assert labelled[0].occurrences == 19 and labelled[0].score is None


def test_a_custom_rule_moves_the_thresholds():
    strict = LabelRule(min_occurrences=5, positive_at_least=0.5, negative_at_most=-0.5)
    [labelled] = label_faces(
        [face("1f642", "face-smiling")], {"1f642": counts(4, 6, 0)}, strict
    )  # score 0.4 >= 0.30 would be positive under the published rule
    assert labelled.label is None and labelled.how == "ranking"


def test_only_mood_faces_and_cat_faces_are_candidates():
    assert is_mood_face(face("1f600", "face-smiling"))
    assert is_mood_face(face("1f63a", "cat-face"))
    assert is_mood_face(face("1f634", "face-sleepy"))
    assert not is_mood_face(face("1f921", "face-costume"))  # clown: a character, not a mood
    assert not is_mood_face(face("1f648", "monkey-face"))
    assert not is_mood_face(face("2764", "heart"))
    assert not is_mood_face(face("1f44d", "hand-fingers-closed", group="people-body"))


def test_agreement_counts_only_faces_both_rules_label():
    faces = [
        face("1f600", "face-smiling"),  # ranking positive, sub-group positive: agree
        face("1f622", "face-concerned"),  # ranking negative, sub-group negative: agree
        face("1f608", "face-negative"),  # ranking positive, sub-group negative: disagree
        face("1f60f", "face-neutral-skeptical"),  # ranking positive, sub-group silent
        face("1f602", "face-smiling"),  # ranking dropped it
    ]
    ranking = {
        "1f600": counts(15, 5, 0),
        "1f622": counts(2, 8, 10),
        "1f608": counts(12, 8, 0),
        "1f60f": counts(12, 8, 0),
        "1f602": counts(8, 8, 4),
    }
    agreement = rule_agreement(label_faces(faces, ranking))
    assert (agreement.compared, agreement.agreed) == (3, 2)
    assert [f.emoji.codepoint for f in agreement.disagreements] == ["1f608"]


def test_the_shipped_ranking_reads_counts_keyed_by_code_point():
    ranking = load_emoji_sentiment_ranking()
    heart_eyes = ranking["1f60d"]  # 😍 in the published table: 329 / 1390 / 4640 of 6359
    assert (heart_eyes.negative, heart_eyes.neutral, heart_eyes.positive) == (329, 1390, 4640)
    assert heart_eyes.occurrences == 6359
    assert "263a" in ranking  # stored without U+FE0F, found without it
