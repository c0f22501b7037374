"""`moodmoji sentiment eval`: our classifier against the VADER lexicon, per source and topic.

Every set is scored three ways, for both models:
- binary accuracy: texts rated positive or negative, each model forced to
  choose (ours: the likelier mood; VADER: the sign of its compound, 0 counting
  as positive);
- three-way macro-F1: every text, ours with its own label, VADER with its
  documented +-0.05 compound band;
- abstention: the share of the positive or negative texts called neutral.
The chat set (sentiment/chat_eval.json, test only) is also scored per
category, with the false-alarm rate: the share of neutral messages given a
mood, i.e. an emoji auto-suggest would post that nobody wanted. The chat set
is scored twice for ours: with its label, and as auto-suggest reads it (a mood
only where `Prediction.suggest`, the stricter threshold calibrated on
validation tweets; otherwise neutral).

With the default backend the test splits are scored from the cached corpus
features (the same cleaning, encoder and head as `classify`, batched
differently; re-embedding 7,000 texts takes minutes on busy cores); the chat
set always goes through the live `classify` path. The topic-left-out figure retrains the head
once per tweet topic without that topic's tweets (cached features) and scores
it on them: how the model does on tweets about something it never saw.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sentiment.classifier import Classifier
from sentiment.head import LABELS
from sentiment.lexicon import vader_label, vader_scores
from sentiment.metrics import accuracy, macro_f1
from sentiment.prediction import Prediction
from sentiment.settings import SentimentSettings

CHAT_SET = Path(__file__).resolve().parent / "chat_eval.json"
DOCS_PATH = Path("docs/sentiment.md")
SECTION = "sentiment-eval"
MOODS = ("positive", "negative")


@dataclass
class Labels:
    """Truth and one model's three-way labels and forced binary choices, row by row."""

    truth: list[str]
    three_way: list[str]
    binary: list[str]

    def subset(self, rows: list[int]) -> "Labels":
        return Labels(*([column[i] for i in rows] for column in vars(self).values()))

    def _polar(self) -> "Labels":
        return self.subset([i for i, t in enumerate(self.truth) if t != "neutral"])

    def binary_accuracy(self) -> float:
        polar = self._polar()
        return accuracy(polar.truth, polar.binary)

    def three_way_f1(self) -> float:
        return macro_f1(self.truth, self.three_way, LABELS)

    def abstention(self) -> float:
        polar = self._polar()
        return _share(polar.three_way, "neutral")

    def false_alarms(self) -> float:
        calm = self.subset([i for i, t in enumerate(self.truth) if t == "neutral"])
        return 1.0 - _share(calm.three_way, "neutral")


def _share(labels: list[str], label: str) -> float:
    return sum(x == label for x in labels) / len(labels) if labels else float("nan")


def ours(truth: list[str], predictions: list[Prediction]) -> Labels:
    return Labels(truth, [p.label for p in predictions], [p.leaning for p in predictions])


def suggested(truth: list[str], predictions: list[Prediction]) -> Labels:
    """Ours as auto-suggest acts on it: a mood only where the prediction may be suggested."""
    return Labels(
        truth,
        [p.label if p.suggest else "neutral" for p in predictions],
        [p.leaning for p in predictions],
    )


def vader(truth: list[str], texts: list[str]) -> Labels:
    compounds = vader_scores(texts)[:, 0].tolist()
    return Labels(
        truth,
        [vader_label(c) for c in compounds],
        ["positive" if c >= 0 else "negative" for c in compounds],
    )


@dataclass
class Row:
    name: str
    ours: Labels
    vader: Labels
    left_out: Labels | None = None  # tweets only: the head trained without this topic
    suggest: Labels | None = None  # chat only: ours as auto-suggest reads it


def load_chat_set() -> list[dict]:
    return json.loads(CHAT_SET.read_text())["messages"]


def evaluate(
    settings: SentimentSettings,
    classifier: Classifier,
    left_out: dict[str, Labels] | None = None,
) -> tuple[list[Row], list[Row]]:
    """Rows for the corpora (per source and topic) and for the chat set (per category)."""
    test, predictions = _test_predictions(settings, classifier)
    texts = [t.text for t in test]
    truth = [t.polarity for t in test]
    mine, lexicon = ours(truth, predictions), vader(truth, texts)
    corpus_rows = []
    for source in ("hutto", "crowdflower"):
        domains = dict.fromkeys(t.domain for t in test if t.source == source)
        for domain in [None, *domains]:
            rows = [
                i for i, t in enumerate(test) if t.source == source and domain in (None, t.domain)
            ]
            name = f"{source} {domain or 'all'}"
            extra = (left_out or {}).get(domain) if source == "crowdflower" else None
            corpus_rows.append(Row(name, mine.subset(rows), lexicon.subset(rows), extra))
    chat = load_chat_set()
    chat_texts = [m["text"] for m in chat]
    chat_truth = [m["label"] for m in chat]
    chat_predictions = classifier.classify(chat_texts)
    chat_mine = ours(chat_truth, chat_predictions)
    chat_suggest = suggested(chat_truth, chat_predictions)
    chat_vader = vader(chat_truth, chat_texts)
    chat_rows = [Row("chat all", chat_mine, chat_vader, suggest=chat_suggest)]
    for category in dict.fromkeys(m["category"] for m in chat):
        rows = [i for i, m in enumerate(chat) if m["category"] == category]
        chat_rows.append(
            Row(
                f"chat {category}",
                chat_mine.subset(rows),
                chat_vader.subset(rows),
                suggest=chat_suggest.subset(rows),
            )
        )
    return corpus_rows, chat_rows


def _test_predictions(settings: SentimentSettings, classifier: Classifier) -> tuple[list, list]:
    from sentiment.train import corpus_texts, training_features

    if classifier.backend.name != "minilm":
        test = [t for t in corpus_texts(settings) if t.split == "test"]
        return test, classifier.classify([t.text for t in test])
    emoji_features = bool(classifier.backend.metadata.emoji_features)
    texts, features, _ = training_features(settings, emoji_features)
    rows = [i for i, t in enumerate(texts) if t.split == "test"]
    scores = classifier.backend.scores_from_features(features[rows])
    threshold, suggest = classifier.neutral_threshold, classifier.suggest_threshold
    return [texts[i] for i in rows], [Prediction.from_scores(s, threshold, suggest) for s in scores]


def topic_left_out(settings: SentimentSettings, config) -> dict[str, Labels]:
    """Per tweet topic: a head trained without that topic's tweets, scored on its test tweets."""
    from sentiment.train import fit, head_probabilities, training_features
    from sentiment.tweets import TOPICS

    texts, features, _ = training_features(settings, config.emoji_features)
    results = {}
    for topic in TOPICS:
        head, threshold, _ = fit(texts, features, config, settings.sentiment_seed, leave_out=topic)
        rows = [
            i
            for i, t in enumerate(texts)
            if t.source == "crowdflower" and t.domain == topic and t.split == "test"
        ]
        predictions = [
            Prediction.from_scores(p, threshold) for p in head_probabilities(head, features[rows])
        ]
        results[topic] = ours([texts[i].polarity for i in rows], predictions)
    return results


def _f(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN: no such texts in the set


def corpus_table(rows: list[Row]) -> str:
    lines = [
        "| set | texts | binary acc. ours | binary acc. VADER | 3-way F1 ours | 3-way F1 VADER "
        "| abstains ours | abstains VADER | topic left out: binary | topic left out: 3-way |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        away = r.left_out
        lines.append(
            f"| {r.name} | {len(r.ours.truth)} | {_f(r.ours.binary_accuracy())} | "
            f"{_f(r.vader.binary_accuracy())} | {_f(r.ours.three_way_f1())} | "
            f"{_f(r.vader.three_way_f1())} | {_f(r.ours.abstention())} | "
            f"{_f(r.vader.abstention())} | "
            f"{_f(away.binary_accuracy()) if away else ''} | "
            f"{_f(away.three_way_f1()) if away else ''} |"
        )
    return "\n".join(lines)


def chat_table(rows: list[Row]) -> str:
    lines = [
        "| chat set | messages | 3-way F1 ours | 3-way F1 VADER | binary acc. ours "
        "| binary acc. VADER | false alarms ours | false alarms VADER "
        "| auto-suggest: 3-way F1 | auto-suggest: false alarms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        auto = r.suggest
        lines.append(
            f"| {r.name.removeprefix('chat ')} | {len(r.ours.truth)} | "
            f"{_f(r.ours.three_way_f1())} | {_f(r.vader.three_way_f1())} | "
            f"{_f(r.ours.binary_accuracy())} | {_f(r.vader.binary_accuracy())} | "
            f"{_f(r.ours.false_alarms())} | {_f(r.vader.false_alarms())} | "
            f"{_f(auto.three_way_f1()) if auto else ''} | "
            f"{_f(auto.false_alarms()) if auto else ''} |"
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
