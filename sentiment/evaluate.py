"""`moodmoji sentiment eval`: our classifier against the VADER lexicon, per domain.

Two views of the same held-out test split:
- binary: clearly rated sentences only (|mean rating| >= 0.5), each model
  forced to say positive or negative (ours: the likelier class; VADER: the
  sign of its compound score, 0 counting as positive). This is the bar the
  default must clear.
- three-way: every test sentence, near-zero ratings counting as neutral; ours
  with its neutral band, VADER with its documented +-0.05 compound band.
The chat check set (sentiment/chat_check.json) is scored the same two ways.
"""

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

from sentiment.classifier import Classifier
from sentiment.data import DOMAIN_FILES, fetch_corpus, load_sentences
from sentiment.lexicon import vader_label, vader_scores
from sentiment.metrics import accuracy, macro_f1
from sentiment.settings import SentimentSettings

CHAT_CHECK_SET = Path(__file__).resolve().parent / "chat_check.json"
DOCS_PATH = Path("docs/sentiment.md")
SECTION = "sentiment-eval"
BINARY = ("positive", "negative")
THREE_WAY = ("positive", "negative", "neutral")


@dataclass
class Scored:
    """One row of the table: a set of texts with truth and both models' labels."""

    name: str
    truth: list[str]
    ours_binary: list[str]
    ours_three_way: list[str]
    vader_binary: list[str]
    vader_three_way: list[str]

    def binary_rows(self) -> list[int]:
        return [i for i, t in enumerate(self.truth) if t != "neutral"]

    def subset(self, name: str, rows: list[int]) -> "Scored":
        columns = {
            f.name: [getattr(self, f.name)[i] for i in rows]
            for f in fields(self)
            if f.name != "name"
        }
        return Scored(name=name, **columns)


def score_texts(name: str, texts: list[str], truth: list[str], classifier: Classifier) -> Scored:
    predictions = classifier.classify(texts)
    compounds = vader_scores(texts)[:, 0].tolist()
    return Scored(
        name=name,
        truth=truth,
        ours_binary=[max(BINARY, key=lambda c, p=p: p.scores.get(c, 0.0)) for p in predictions],
        ours_three_way=[p.label for p in predictions],
        vader_binary=["positive" if c >= 0 else "negative" for c in compounds],
        vader_three_way=[vader_label(c) for c in compounds],
    )


def evaluate(settings: SentimentSettings, classifier: Classifier) -> list[Scored]:
    sentences = load_sentences(fetch_corpus(settings.sentiment_cache_dir), settings.sentiment_seed)
    test = [s for s in sentences if s.split == "test"]
    scored = score_texts("all", [s.text for s in test], [s.polarity for s in test], classifier)
    per_domain = [
        scored.subset(domain, [i for i, s in enumerate(test) if s.domain == domain])
        for domain in DOMAIN_FILES
    ]
    chat = json.loads(CHAT_CHECK_SET.read_text())["messages"]
    chat_scored = score_texts(
        "chat check set", [m["text"] for m in chat], [m["label"] for m in chat], classifier
    )
    return [scored, *per_domain, chat_scored]


def results_table(results: list[Scored]) -> str:
    lines = [
        "| set | clear sentences | macro-F1 ours | macro-F1 VADER | gain | accuracy ours "
        "| accuracy VADER | 3-way sentences | 3-way macro-F1 ours | 3-way macro-F1 VADER |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        clear = r.subset(r.name, r.binary_rows())
        f1_ours = macro_f1(clear.truth, clear.ours_binary, BINARY)
        f1_vader = macro_f1(clear.truth, clear.vader_binary, BINARY)
        lines.append(
            f"| {r.name} | {len(clear.truth)} | {f1_ours:.3f} | {f1_vader:.3f} | "
            f"{100 * (f1_ours - f1_vader):+.1f} | {accuracy(clear.truth, clear.ours_binary):.3f} | "
            f"{accuracy(clear.truth, clear.vader_binary):.3f} | {len(r.truth)} | "
            f"{macro_f1(r.truth, r.ours_three_way, THREE_WAY):.3f} | "
            f"{macro_f1(r.truth, r.vader_three_way, THREE_WAY):.3f} |"
        )
    return "\n".join(lines)


def write_results(table: str, description: str, path: Path = DOCS_PATH) -> Path:
    """Replace the marked results section of docs/sentiment.md (the prose around it stays)."""
    block = f"<!-- {SECTION} -->\n{description.rstrip()}\n\n{table}\n<!-- /{SECTION} -->"
    text = path.read_text() if path.exists() else "# Sentiment\n"
    pattern = re.compile(rf"<!-- {SECTION} -->.*?<!-- /{SECTION} -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + f"\n\n## Results\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
