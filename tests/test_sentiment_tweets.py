"""The CrowdFlower topic tweets: topics recovered from the file's order, left-out topics, splits."""

import csv
from collections import Counter

import pytest

from moodmoji.errors import MoodmojiError
from sentiment.tweets import LEFT_OUT, TOPICS, _segment, load_tweets

# One keyword-bearing text per topic, in the file's order (sentiment/tweets.py).
SAMPLES = {
    "cars": "riding in a driverless car {n}",
    "airlines": "@united my flight {n}",
    "coachella": "coachella lineup {n}",
    "deflategate": "brady and the footballs {n}",
    "apple": "my new iphone {n}",
    "claritin": "claritin for my allergies {n}",
}


def _write_csv(path, per_topic=20, confidence="0.9"):
    """Rows sorted by label, the six sets pasted in order inside each label, like the real file;
    every fifth text names no topic at all, and Coachella/Claritin give no confidence."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentiment", "confidence", "text"])
        for label in ("negative", "neutral", "positive"):
            for topic, text in SAMPLES.items():
                for n in range(per_topic):
                    words = f"{label} thoughts {n}" if n % 5 == 2 else text.format(n=f"{label} {n}")
                    given = "" if topic in ("coachella", "claritin") else confidence
                    writer.writerow([label, given, words])
    return path


def test_topics_follow_the_file_order_and_left_out_topics_are_dropped(tmp_path):
    tweets = load_tweets(_write_csv(tmp_path / "t.csv"), seed=4)
    counts = Counter((t.domain, t.polarity) for t in tweets)
    assert set(TOPICS) == {"cars", "coachella", "apple", "claritin"}
    assert set(LEFT_OUT) == {"airlines", "deflategate"}
    # Texts naming no topic still land in the run around them.
    assert counts == {
        (topic, label): 20 for topic in TOPICS for label in ("negative", "neutral", "positive")
    }
    assert all("flight" not in t.text and "brady" not in t.text for t in tweets)


def test_low_confidence_rows_are_dropped(tmp_path):
    tweets = load_tweets(_write_csv(tmp_path / "t.csv", confidence="0.5"), seed=4)
    assert {t.domain for t in tweets} == {"coachella", "claritin"}  # no confidence: kept


def test_split_is_seeded_per_topic_and_retweets_share_a_side(tmp_path):
    path = _write_csv(tmp_path / "t.csv", per_topic=40)
    with path.open("a", newline="") as handle:
        for _ in range(6):  # one tweet retweeted six times
            csv.writer(handle).writerow(["positive", "1", "RT claritin works great"])
    first = load_tweets(path, seed=4)
    assert [(t.sentence_id, t.split) for t in first] == [
        (t.sentence_id, t.split) for t in load_tweets(path, seed=4)
    ]
    assert [t.split for t in first] != [t.split for t in load_tweets(path, seed=5)]
    assert len({t.split for t in first if t.text == "RT claritin works great"}) == 1
    cars = Counter(t.split for t in first if t.domain == "cars")
    assert cars == {"train": 84, "validation": 12, "test": 24}


def test_segment_moves_forward_only():
    # A stray cars keyword inside the Coachella run does not send the run back.
    texts = ["driverless", "driverless", "coachella", "coachella", "driverless", "coachella", "mac"]
    assert _segment(texts) == ["cars", "cars"] + ["coachella"] * 4 + ["apple"]


def test_a_csv_of_another_shape_is_a_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("label,text\npositive,hi\n")
    with pytest.raises(MoodmojiError, match="not the CrowdFlower topics csv"):
        load_tweets(path, seed=4)
