"""`moodmoji sentiment ...`: argument routing, the classify output, the eval doc writer."""

import pytest

from moodmoji.cli import build_parser, main
from sentiment.evaluate import Scored, results_table, write_results


@pytest.mark.parametrize(
    ("argv", "command", "text"),
    [
        (["sentiment", "I love this"], "classify", ["I love this"]),
        (["sentiment", "so", "good"], "classify", ["so", "good"]),
        (["sentiment", "classify", "train"], "classify", ["train"]),
    ],
)
def test_text_without_a_subcommand_is_classified(argv, command, text):
    args = build_parser().parse_args(argv)
    assert (args.sentiment_command, args.text) == (command, text)


def test_subcommands_parse():
    assert build_parser().parse_args(["sentiment", "train", "--hidden", "0"]).hidden == 0
    assert build_parser().parse_args(["sentiment", "eval"]).sentiment_command == "eval"


def test_classify_prints_label_confidence_and_time(capsys, monkeypatch):
    monkeypatch.setenv("MOODMOJI_SENTIMENT_DEVICE", "cpu")
    assert main(["sentiment", "this is the best day ever 🎉"]) == 0
    out = capsys.readouterr().out
    label, _, rest = out.partition("  confidence ")
    assert label == "positive"
    assert float(rest.split()[0]) > 0.5
    assert " ms; model load " in rest


def test_missing_head_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOODMOJI_SENTIMENT_HEAD_DIR", str(tmp_path))
    assert main(["sentiment", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moodmoji: error: no sentiment head") and "\n" not in err


def test_eval_results_replace_only_their_section(tmp_path):
    doc = tmp_path / "sentiment.md"
    doc.write_text("# Sentiment\n\nProse that stays.\n")
    write_results("| a |\n| --- |\n| 1 |", "first run", doc)
    write_results("| a |\n| --- |\n| 2 |", "second run", doc)
    text = doc.read_text()
    assert text.startswith("# Sentiment\n\nProse that stays.\n")
    assert "second run" in text and "| 2 |" in text
    assert "first run" not in text and "| 1 |" not in text


def test_results_table_scores_clear_rows_binary_and_all_rows_three_way():
    scored = Scored(
        name="toy",
        truth=["positive", "negative", "neutral"],
        ours_binary=["positive", "negative", "positive"],
        ours_three_way=["positive", "negative", "neutral"],
        vader_binary=["negative", "negative", "positive"],
        vader_three_way=["neutral", "negative", "neutral"],
    )
    row = results_table([scored]).splitlines()[-1]
    # VADER, binary on the two clear rows: positive F1 0, negative F1 2/3 -> 0.333.
    # VADER, three-way: positive 0, negative 1, neutral 2/3 -> 0.556.
    assert row == "| toy | 2 | 1.000 | 0.333 | +66.7 | 1.000 | 0.500 | 3 | 1.000 | 0.556 |"
