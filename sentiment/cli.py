"""`moodmoji sentiment ...` and `moodmoji bench sentiment`.

    moodmoji sentiment "some text"        # label, confidence, time taken
    moodmoji sentiment classify "text"    # the same, spelled out
    moodmoji sentiment train              # refit the head (writes sentiment/default_head/)
    moodmoji sentiment eval               # tables vs VADER into docs/sentiment.md
    moodmoji sentiment prepare            # fill the cache serving needs (emoji model, ONNX)

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
        metavar="{classify,train,eval,prepare} | TEXT",
        required=True,
        action=_CommandOrText,
    )

    classify = commands.add_parser("classify", help="print label, confidence and time taken")
    classify.add_argument("text", nargs="+", help="the message (several words are joined)")
    classify.set_defaults(handler=run_classify)

    prepare = commands.add_parser(
        "prepare",
        help="fetch and build what classifying needs into the cache (nade's emoji model, "
        "the ONNX encoder), so the first message does not wait and no network is needed later",
    )
    prepare.set_defaults(handler=run_prepare)

    train = commands.add_parser("train", help="train the classification head")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="head folder (default: MOODMOJI_SENTIMENT_HEAD_DIR, the packaged head)",
    )
    train.add_argument("--hidden", type=int, default=None, help="hidden units (0: linear)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument(
        "--members", type=int, default=None, help="heads from successive seeds, averaged"
    )
    train.add_argument(
        "--no-emoji-features",
        action="store_true",
        help="leave nade's 151 emoji probabilities out of the features",
    )
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "eval",
        help="binary accuracy, 3-way macro-F1 and abstention per source, topic and chat "
        "category vs VADER, into docs/sentiment.md",
    )
    evaluate.add_argument("--out", type=Path, default=Path("docs/sentiment.md"))
    evaluate.add_argument(
        "--no-left-out",
        action="store_true",
        help="skip the topic-left-out retraining (one head per tweet topic)",
    )
    evaluate.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    evaluate.set_defaults(handler=run_eval)


def register_bench(bench_subparsers) -> None:
    bench = bench_subparsers.add_parser(
        "sentiment", help="single-message latency and batched throughput of the classifier"
    )
    bench.add_argument("--repeats", type=int, default=200, help="single-message calls timed")
    bench.add_argument("--messages", type=int, default=2048, help="messages in the batched run")
    bench.add_argument(
        "--runtimes",
        default="onnx,torch",
        help="encoder runtimes to measure side by side, the first is the one served "
        "(onnx needs a cpu device)",
    )
    bench.add_argument(
        "--block",
        type=int,
        default=20,
        help="single-message calls in a row per runtime before the next takes over (1: "
        "call by call, where each runtime's weights evict the other's from the cpu caches, "
        "which a server running one runtime does not see)",
    )
    bench.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
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


def run_prepare(args) -> int:
    _quiet_transformers()
    from sentiment import load_classifier
    from sentiment.settings import SentimentSettings

    settings = SentimentSettings()
    started = time.perf_counter()
    load_classifier(settings)  # exports the ONNX encoder and fetches the emoji model if missing
    cached = sorted(p.name for p in settings.sentiment_cache_dir.glob("*") if p.is_file())
    print(
        f"ready in {time.perf_counter() - started:.1f} s: {settings.sentiment_cache_dir} "
        f"holds {', '.join(cached) or 'nothing (this backend needs no cache)'}"
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
    if args.no_emoji_features:
        config.emoji_features = False
    if args.members is not None:
        config.members = args.members
    out = args.out or settings.sentiment_head_dir
    metadata = train(settings, out, config)
    print(
        f"head written to {out}: validation 3-way macro-F1 "
        f"{metadata.training['validation_three_way_macro_f1_calibrated']:.3f}, "
        f"neutral threshold {metadata.neutral_threshold:.2f}"
    )
    return 0


def run_eval(args) -> int:
    _quiet_transformers()
    from sentiment.classifier import load_classifier
    from sentiment.evaluate import (
        chat_table,
        corpus_table,
        evaluate,
        topic_left_out,
        write_results,
    )
    from sentiment.settings import SentimentSettings
    from sentiment.train import HeadTraining

    settings = SentimentSettings()
    classifier = load_classifier(settings)
    # The left-out heads are trained like the one served: with its features.
    metadata = getattr(classifier.backend, "metadata", None)
    config = HeadTraining(
        emoji_features=bool(metadata and metadata.emoji_features),
        members=metadata.members if metadata else 1,
    )
    left_out = None if args.no_left_out else topic_left_out(settings, config)
    corpus_rows, chat_rows = evaluate(settings, classifier, left_out)
    tables = f"{corpus_table(corpus_rows)}\n\n{chat_table(chat_rows)}"
    description = (
        f"Command: `moodmoji sentiment eval` (backend `{classifier.backend.name}`, neutral "
        f"threshold {classifier.neutral_threshold:.2f}, auto-suggest threshold "
        f"{_threshold(classifier.suggest_threshold)}, split seed {settings.sentiment_seed}).\n"
        "Test splits only. Binary accuracy: texts rated positive or negative, each model "
        "forced to choose; 3-way F1: every text, macro-averaged over the three classes; "
        "abstains: share of the positive or negative texts called neutral; topic left out: "
        "a head trained without that topic's tweets, scored on them; false alarms: share "
        "of the neutral chat messages given a mood; auto-suggest: ours where a prediction "
        "may be suggested (confidence at or above the auto-suggest threshold), else neutral."
    )
    print(tables)
    if not args.no_write:
        print(f"written to {write_results(tables, description, args.out)}")
    return 0


def _threshold(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def run_bench(args) -> int:
    """Single-message latency and batched throughput, each runtime asked in turn.

    The runtimes take turns in blocks of `--block` calls (and round by round
    for the batched run), the order flipping every block, so on a machine
    whose load drifts they see the same load and their ratio is fair even
    when the absolute figures are not.
    """
    _quiet_transformers()
    import torch

    from moodmoji.benchmarks import write_section
    from sentiment.classifier import load_classifier
    from sentiment.evaluate import load_chat_set
    from sentiment.settings import SentimentSettings

    settings = SentimentSettings()
    load_average = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    chat = [m["text"] for m in load_chat_set()]
    runtimes = args.runtimes.split(",")
    classifiers, load_s = {}, {}
    for runtime in runtimes:
        started = time.perf_counter()
        classifiers[runtime] = load_classifier(
            settings.model_copy(update={"sentiment_runtime": runtime})
        )
        load_s[runtime] = time.perf_counter() - started
        classifiers[runtime].classify(chat[:64])  # warm-up: first calls allocate and pick kernels
    single_ms = {runtime: [] for runtime in runtimes}
    block = max(1, args.block)
    for start in range(0, args.repeats, block):
        turn = runtimes if (start // block) % 2 == 0 else runtimes[::-1]
        for runtime in turn:
            for i in range(start, min(start + block, args.repeats)):
                tick = time.perf_counter()
                classifiers[runtime].classify([chat[i % len(chat)]])
                single_ms[runtime].append(1000 * (time.perf_counter() - tick))
    messages = [chat[i % len(chat)] for i in range(args.messages)]
    per_second = {runtime: [] for runtime in runtimes}
    for _round in range(3):
        for runtime, classifier in classifiers.items():
            tick = time.perf_counter()
            classifier.classify(messages)
            per_second[runtime].append(len(messages) / (time.perf_counter() - tick))
    backend = classifiers[runtimes[0]].backend
    lines = [
        f"Backend `{backend.name}` on {backend.device}, threads {settings.sentiment_cpu_threads} "
        f"(torch reports {torch.get_num_threads()}), batch size {settings.sentiment_batch_size}; "
        f"messages from `sentiment/chat_eval.json` ({len(chat)} Discord-style messages, cleaning "
        f"included); runtimes take turns every {block} single-message calls (order flipped "
        f"each turn), batched runs 3 rounds (median); "
        f"load average (1/5/15 min) at start {load_average}, at end "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
        + ".",
        "",
        "| measure | " + " | ".join(runtimes) + " | target |",
        "| --- | " + " | ".join("---:" for _ in runtimes) + " | ---: |",
        "| load (encoder + head) | " + " | ".join(f"{load_s[r]:.2f} s" for r in runtimes) + " | |",
    ]
    p50 = {r: statistics.median(single_ms[r]) for r in runtimes}
    p95 = {r: statistics.quantiles(single_ms[r], n=100)[94] for r in runtimes}
    lines.append(
        "| single message p50 | " + " | ".join(f"{p50[r]:.1f} ms" for r in runtimes) + " | < 5 ms |"
    )
    lines.append(
        "| single message p95 | " + " | ".join(f"{p95[r]:.1f} ms" for r in runtimes) + " | |"
    )
    lines.append(
        f"| batched ({len(messages)} messages) | "
        + " | ".join(f"{statistics.median(per_second[r]):.0f} msg/s" for r in runtimes)
        + " | > 200 msg/s |"
    )
    if len(runtimes) > 1:
        first, other = runtimes[0], runtimes[1]
        batched = statistics.median(per_second[first]) / statistics.median(per_second[other])
        lines += [
            "",
            f"{first} against {other}: single-message p50 {p50[other] / p50[first]:.2f}x faster, "
            f"batched {batched:.2f}x.",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        command = (
            f"moodmoji bench sentiment --repeats {args.repeats} --messages {args.messages} "
            f"--runtimes {args.runtimes} --block {block}"
        )
        print(f"written to {write_section('sentiment', body, command)}")
    return 0
