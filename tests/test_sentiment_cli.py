"""`moodmoji sentiment ...`: argument routing, the classify output, the eval doc writer."""

import pytest

from moodmoji.cli import build_parser, main
from sentiment.evaluate import Labels, Row, chat_table, corpus_table, write_results


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


def test_prepare_leaves_the_emoji_model_and_the_onnx_encoder_in_the_cache(capsys, monkeypatch):
    monkeypatch.setenv("MOODMOJI_SENTIMENT_DEVICE", "cpu")
    assert main(["sentiment", "prepare"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ready in ") and "nade_250k_hp.ftz" in out and "encoder-" in out


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


def test_tables_score_polar_rows_binary_all_rows_three_way_and_count_abstentions():
    truth = ["positive", "negative", "neutral", "neutral"]
    ours = Labels(
        truth,
        ["positive", "neutral", "neutral", "negative"],
        ["positive", "negative", "positive", "negative"],
    )
    vader = Labels(
        truth,
        ["neutral", "negative", "neutral", "neutral"],
        ["negative", "negative", "positive", "positive"],
    )
    left_out = Labels(
        truth,
        ["positive", "negative", "neutral", "neutral"],
        ["positive", "negative", "negative", "negative"],
    )
    row = corpus_table([Row("toy", ours, vader, left_out)]).splitlines()[-1]
    # Ours, 3-way: positive F1 1, negative 0 (said once, wrongly), neutral 1/2 -> 0.500;
    # VADER: positive 0, negative 1, neutral 4/5 -> 0.600. Abstains: ours 1 of 2, VADER 1 of 2.
    assert row == ("| toy | 4 | 1.000 | 0.500 | 0.500 | 0.600 | 0.500 | 0.500 | 1.000 | 1.000 |")
    chat = chat_table([Row("chat toy", ours, vader)]).splitlines()[-1]
    # False alarms: neutral messages given a mood; ours 1 of 2, VADER 0 of 2.
    assert chat == "| toy | 4 | 0.500 | 0.600 | 1.000 | 0.500 | 0.500 | 0.000 |  |  |"


def test_auto_suggest_columns_count_only_moods_that_may_be_suggested():
    from sentiment.evaluate import suggested
    from sentiment.prediction import Prediction

    truth = ["positive", "negative", "neutral", "neutral"]
    scores = [
        {"positive": 0.9, "negative": 0.05, "neutral": 0.05},
        {"positive": 0.1, "negative": 0.6, "neutral": 0.3},  # a mood, not sure enough
        {"positive": 0.1, "negative": 0.8, "neutral": 0.1},  # a false alarm either way
        {"positive": 0.55, "negative": 0.05, "neutral": 0.4},  # one only below 0.7
    ]
    predictions = [Prediction.from_scores(s, 0.38, 0.7) for s in scores]
    mine = Labels(truth, [p.label for p in predictions], [p.leaning for p in predictions])
    chat = chat_table([Row("chat toy", mine, mine, suggest=suggested(truth, predictions))])
    # Labels: 2 of 2 neutral messages given a mood; as suggested: 1 of 2 (the 0.8 one).
    # Suggested 3-way: positive F1 1, negative 0 (said once, wrongly), neutral 1/2 -> 0.500.
    assert chat.splitlines()[-1].endswith("| 1.000 | 1.000 | 0.500 | 0.500 |")


def test_bench_and_eval_take_no_write():
    assert build_parser().parse_args(["bench", "sentiment", "--no-write"]).no_write
    assert build_parser().parse_args(["sentiment", "eval", "--no-write"]).no_write
