"""`moodmoji sentiment ...` and `moodmoji bench sentiment`.

    moodmoji sentiment "some text"        # label, confidence, time taken
    moodmoji sentiment classify "text"    # the same, spelled out
    moodmoji sentiment train              # refit the head (writes sentiment/default_head/)
    moodmoji sentiment eval               # table vs VADER into docs/sentiment.md

Torch and transformers are imported inside the handlers only.
"""

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

log = logging.getLogger(__name__)


class _CommandOrText(argparse._SubParsersAction):
    """Subcommands where a first word that names none is the text to classify."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = None  # let any first word through; __call__ routes it

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] not in self._name_parser_map:
            values = ["classify", *values]
        super().__call__(parser, namespace, values, option_string)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sentiment",
        help="read a message's mood: classify, train the head, evaluate against VADER",
        description='Classify a message (moodmoji sentiment "some text"), train or evaluate.',
    )
    commands = parser.add_subparsers(
        dest="sentiment_command",
        metavar="{classify,train,eval} | TEXT",
        required=True,
        action=_CommandOrText,
    )

    classify = commands.add_parser("classify", help="print label, confidence and time taken")
    classify.add_argument("text", nargs="+", help="the message (several words are joined)")
    classify.set_defaults(handler=run_classify)

    train = commands.add_parser("train", help="train the classification head")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="head folder (default: MOODMOJI_SENTIMENT_HEAD_DIR, the packaged head)",
    )
    train.add_argument("--hidden", type=int, default=None, help="hidden units (0: linear)")
    train.add_argument("--epochs", type=int, default=None)
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "eval", help="accuracy and macro-F1 per domain vs VADER, into docs/sentiment.md"
    )
    evaluate.add_argument("--out", type=Path, default=Path("docs/sentiment.md"))
    evaluate.set_defaults(handler=run_eval)


def register_bench(bench_subparsers) -> None:
    bench = bench_subparsers.add_parser(
        "sentiment", help="single-message latency and batched throughput of the classifier"
    )
    bench.add_argument("--repeats", type=int, default=200, help="single-message calls timed")
    bench.add_argument("--messages", type=int, default=2048, help="messages in the batched run")
    bench.set_defaults(handler=run_bench)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run_classify(args) -> int:
    _quiet_transformers()
    from sentiment import load_classifier

    started = time.perf_counter()
    classifier = load_classifier()
    loaded = time.perf_counter()
    prediction = classifier.classify([" ".join(args.text)])[0]
    done = time.perf_counter()
    scores = ", ".join(f"{k} {v:.3f}" for k, v in prediction.scores.items())
    print(
        f"{prediction.label}  confidence {prediction.confidence:.3f}  "
        f"({1000 * (done - loaded):.1f} ms; model load {loaded - started:.2f} s)"
        f"  [{scores}]"
    )
    return 0


def run_train(args) -> int:
    _quiet_transformers()
    from sentiment.settings import SentimentSettings
    from sentiment.train import HeadTraining, train

    settings = SentimentSettings()
    config = HeadTraining()
    if args.hidden is not None:
        config.hidden = args.hidden
    if args.epochs is not None:
        config.epochs = args.epochs
    out = args.out or settings.sentiment_head_dir
    metadata = train(settings, out, config)
    print(
        f"head written to {out}: validation macro-F1 "
        f"{metadata.training['validation_binary_macro_f1']:.3f}, "
        f"neutral threshold {metadata.neutral_threshold:.2f}"
    )
    return 0


def run_eval(args) -> int:
    _quiet_transformers()
    from sentiment.classifier import load_classifier
    from sentiment.evaluate import evaluate, results_table, write_results
    from sentiment.settings import SentimentSettings

    settings = SentimentSettings()
    classifier = load_classifier(settings)
    table = results_table(evaluate(settings, classifier))
    backend = classifier.backend.name
    description = (
        f"Command: `moodmoji sentiment eval` (backend `{backend}`, neutral threshold "
        f"{classifier.neutral_threshold:.2f}, split seed {settings.sentiment_seed}).\n"
        "Binary columns: clearly rated test sentences, each model forced to choose; "
        "3-way columns: every test sentence, near-zero ratings as neutral."
    )
    print(table)
    print(f"written to {write_results(table, description, args.out)}")
    return 0


def run_bench(args) -> int:
    _quiet_transformers()
    import json

    import torch

    from moodmoji.benchmarks import write_section
    from sentiment.classifier import load_classifier
    from sentiment.evaluate import CHAT_CHECK_SET
    from sentiment.settings import SentimentSettings

    settings = SentimentSettings()
    load_average = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    chat = [m["text"] for m in json.loads(CHAT_CHECK_SET.read_text())["messages"]]
    started = time.perf_counter()
    classifier = load_classifier(settings)
    load_s = time.perf_counter() - started
    classifier.classify(chat)  # warm-up: first calls allocate and pick kernels
    single_ms = []
    for i in range(args.repeats):
        tick = time.perf_counter()
        classifier.classify([chat[i % len(chat)]])
        single_ms.append(1000 * (time.perf_counter() - tick))
    messages = [chat[i % len(chat)] for i in range(args.messages)]
    tick = time.perf_counter()
    classifier.classify(messages)
    per_second = len(messages) / (time.perf_counter() - tick)
    quantiles = statistics.quantiles(single_ms, n=100)
    backend = classifier.backend
    body = "\n".join(
        [
            f"Backend `{backend.name}` on {backend.device}, "
            f"torch threads {torch.get_num_threads()}, "
            f"batch size {settings.sentiment_batch_size}; "
            "messages from `sentiment/chat_check.json` "
            "(short Discord-style chat, cleaning included); "
            f"load average (1/5/15 min) at start {load_average}.",
            "",
            "| measure | value | target |",
            "| --- | ---: | ---: |",
            f"| load (encoder + head) | {load_s:.2f} s | |",
            f"| single message p50 | {statistics.median(single_ms):.1f} ms | < 30 ms |",
            f"| single message p95 | {quantiles[94]:.1f} ms | |",
            f"| batched ({len(messages)} messages) | {per_second:.0f} msg/s | > 200 msg/s |",
        ]
    )
    print(body)
    command = f"moodmoji bench sentiment --repeats {args.repeats} --messages {args.messages}"
    print(f"written to {write_section('sentiment', body, command)}")
    return 0
