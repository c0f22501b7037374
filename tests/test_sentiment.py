"""The classifier end to end: the packaged MiniLM encoder, the committed head, no network."""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from moodmoji.errors import MoodmojiError
from sentiment import Prediction, classify, load_classifier
from sentiment.classifier import Classifier
from sentiment.prediction import LABELS
from sentiment.settings import SentimentSettings


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    # On a cpu the default runtime is ONNX (the encoder is exported once and cached).
    return load_classifier(SentimentSettings(sentiment_backend="minilm", sentiment_device="cpu"))


@pytest.fixture(scope="module")
def torch_classifier() -> Classifier:
    return load_classifier(
        SentimentSettings(
            sentiment_backend="minilm", sentiment_device="cpu", sentiment_runtime="torch"
        )
    )


def _valid(prediction: Prediction) -> bool:
    return (
        prediction.label in LABELS
        and 0.0 <= prediction.confidence <= 1.0
        and abs(sum(prediction.scores.values()) - 1.0) < 1e-4
        and prediction.confidence == max(prediction.scores.values())
    )


def test_default_loads_and_classifies_with_no_network(classifier):
    # A fresh interpreter: the offline switches are read when transformers is
    # imported, and any attempt to open a socket fails loudly. (The fixture
    # has exported the ONNX encoder by now, so the timeout measures a load.)
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from sentiment import classify
        print(classify(["I love this so much!"])[0].label)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("MOODMOJI_SENTIMENT_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "positive"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love this, it is absolutely wonderful!", "positive"),
        ("thank you so much, you made my day 😊", "positive"),
        ("gg <@123> that was amazing 🎉", "positive"),
        ("I hate this. It is terrible and a total waste of money.", "negative"),
        ("worst day ever, everything is broken 😡", "negative"),
        ("ugh my cat died, I feel awful 😭", "negative"),
        # The two the old gated head got wrong (issue 18): negation of a mood word.
        ("my dog died this morning and I can't stop crying", "negative"),
        ("I can't stop smiling!", "positive"),
        ("Server maintenance tonight from 22:00 to 23:00 UTC.", "neutral"),
    ],
)
def test_clear_cut_messages_get_the_right_label(classifier, text, label):
    assert classifier.classify([text])[0].label == label


def test_batch_matches_one_by_one_in_input_order(classifier):
    texts = [
        "I hate this. It is terrible and a total waste of money.",
        "yay",
        "thank you so much, you made my day 😊 and the whole team was lovely to work with",
        "ugh",
    ]
    batched = classifier.classify(texts)
    for text, prediction in zip(texts, batched, strict=True):
        alone = classifier.classify([text])[0]
        assert alone.label == prediction.label
        assert alone.confidence == pytest.approx(prediction.confidence, abs=1e-4)


def test_concurrent_callers_get_the_same_answers(classifier):
    texts = [f"message {n}: {'I love it' if n % 2 else 'this is awful'} 🎉" for n in range(16)]
    expected = [p.label for p in classifier.classify(texts)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        labels = list(pool.map(lambda t: classifier.classify([t])[0].label, texts))
    assert labels == expected


def test_neutral_band_turns_a_weak_mood_into_neutral(classifier):
    prediction = classifier.classify(["the movie was fine I guess, some good parts"])[0]
    mood = max(prediction.scores, key=prediction.scores.get)
    below = Classifier(classifier.backend, prediction.confidence - 0.01, classifier.max_chars)
    above = Classifier(classifier.backend, prediction.confidence + 0.01, classifier.max_chars)
    assert below.classify(["the movie was fine I guess, some good parts"])[0].label == mood
    banded = above.classify(["the movie was fine I guess, some good parts"])[0]
    assert banded.label == "neutral"
    assert banded.scores == pytest.approx(prediction.scores)


def test_prediction_from_scores_applies_the_threshold():
    scores = {"positive": 0.62, "negative": 0.38}
    assert Prediction.from_scores(scores, 0.7) == Prediction("neutral", 0.62, scores)
    assert Prediction.from_scores(scores, 0.6) == Prediction("positive", 0.62, scores, True)


def test_a_mood_below_the_suggest_threshold_is_not_suggested():
    scores = {"positive": 0.62, "negative": 0.3, "neutral": 0.08}
    unsure = Prediction.from_scores(scores, 0.38, suggest_threshold=0.7)
    assert unsure.label == "positive" and not unsure.suggest  # a mood, but no suggestion
    assert Prediction.from_scores(scores, 0.38, suggest_threshold=0.6).suggest
    calm = Prediction.from_scores({"positive": 0.1, "negative": 0.1, "neutral": 0.8}, 0.38, 0.5)
    assert not calm.suggest  # neutral is never suggested, however sure


def test_committed_head_has_a_suggest_threshold_above_the_neutral_one(classifier):
    assert classifier.suggest_threshold == classifier.backend.metadata.suggest_threshold
    assert classifier.neutral_threshold < classifier.suggest_threshold < 1.0
    sure, weak = classifier.classify(
        ["I love this, it is absolutely wonderful!", "the movie was fine I guess, some good parts"]
    )
    assert sure.suggest and sure.confidence >= classifier.suggest_threshold
    assert not weak.suggest or weak.confidence >= classifier.suggest_threshold


def test_the_suggest_threshold_setting_overrides_the_heads():
    settings = SentimentSettings(sentiment_device="cpu", sentiment_suggest_threshold=1.0)
    (prediction,) = load_classifier(settings).classify(["I love this, it is wonderful!"])
    assert prediction.label == "positive" and not prediction.suggest


def test_committed_head_has_a_calibrated_threshold(classifier):
    assert 1 / 3 <= classifier.neutral_threshold < 1.0
    assert classifier.neutral_threshold == classifier.backend.metadata.neutral_threshold


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t  ",
        "😂😂😂",
        "🙂",
        "<@123> <#456> https://example.com",
        "so happy " * 445,  # 4,005 characters, Discord's limit and a bit more
        "x" * 4000,
        bytes(range(256)).decode("latin-1"),
        b"\xff\xfe\x00junk\x80\x81",
        "\x00\x00\x00",
        "\ud800 lone surrogate",
    ],
    ids=[
        "empty",
        "whitespace",
        "emoji-only",
        "one-emoji",
        "markup-only",
        "4000-words",
        "4000-one-word",
        "latin1-junk",
        "bytes-junk",
        "nuls",
        "surrogate",
    ],
)
def test_awkward_input_gives_a_valid_prediction(classifier, text):
    (prediction,) = classifier.classify([text])
    assert _valid(prediction), prediction


def test_nothing_readable_is_neutral(classifier):
    for prediction in classifier.classify(["", "  ", "<@1> https://x.y"]):
        assert prediction.label == "neutral"
        assert prediction.scores == pytest.approx(
            {"positive": 1 / 3, "negative": 1 / 3, "neutral": 1 / 3}
        )


def test_empty_batch_gives_no_predictions(classifier):
    assert classifier.classify([]) == []


def test_wrong_types_are_clear_errors(classifier):
    with pytest.raises(TypeError, match="list of messages"):
        classifier.classify("a bare string")
    with pytest.raises(TypeError, match="str or bytes, not int"):
        classifier.classify([42])


def test_module_level_classify_uses_a_shared_default(monkeypatch):
    import sentiment.classifier as module

    monkeypatch.setattr(module, "_default", None)
    monkeypatch.setenv("MOODMOJI_SENTIMENT_DEVICE", "cpu")
    first = classify(["what a lovely day"])
    shared = module._default
    assert first[0].label == "positive"
    classify(["awful"])
    assert module._default is shared


def test_onnx_and_torch_runtimes_agree_on_the_chat_set(classifier, torch_classifier):
    from sentiment.evaluate import load_chat_set

    assert classifier.backend.runtime == "onnx" and torch_classifier.backend.runtime == "torch"
    texts = [m["text"] for m in load_chat_set()]  # 350 messages, every category
    for fast, reference in zip(
        classifier.classify(texts), torch_classifier.classify(texts), strict=True
    ):
        assert fast.label == reference.label
        assert fast.scores == pytest.approx(reference.scores, abs=1e-4)


def test_the_fast_tokenizer_gives_the_wrappers_token_ids(classifier):
    from sentiment.cleaning import clean_message
    from sentiment.evaluate import load_chat_set

    encoder = classifier.backend.encoder
    texts = [clean_message(m["text"]) for m in load_chat_set()]
    # Cut at the token limit, one long word, and non-ASCII text.
    texts += ["so happy " * 300, "x" * 4000, "naïve café — “quotes” 日本語"]
    for batch in ([t] for t in texts), [texts[:64], texts[-3:]]:
        for rows in batch:
            ids, mask = encoder.tokenize(rows)
            reference = encoder.tokenizer(
                rows, padding=True, truncation=True, max_length=encoder.max_length
            )
            assert ids.tolist() == reference["input_ids"]
            assert mask.tolist() == reference["attention_mask"]
    assert ids.shape[1] == encoder.max_length  # the long ones were cut


def test_onnx_path_runs_no_torch_head(classifier, monkeypatch):
    # One message goes through numpy and ONNX Runtime only: torch's per-op
    # dispatch cost more than the small head itself. A torch call here fails.
    def refuse(*args, **kwargs):
        raise AssertionError("the torch head ran")

    monkeypatch.setattr(classifier.backend.head, "forward", refuse)
    assert classifier.classify(["I love this so much!"])[0].label == "positive"


def test_onnx_on_a_gpu_is_a_clear_error():
    settings = SentimentSettings(sentiment_runtime="onnx", sentiment_device="cuda")
    with pytest.raises(MoodmojiError):  # no CUDA here, or onnx asked for on it: both say so
        load_classifier(settings)


def test_a_head_from_before_the_three_classes_is_a_clear_error(tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "head.safetensors"))
    (tmp_path / "head.json").write_text(
        json.dumps(
            {
                "in_features": 388,
                "hidden": 64,
                "neutral_threshold": 0.73,
                "encoder_fingerprint": "x",
                "max_length": 128,
                "labels": ["negative", "positive"],
                "domains": ["tweets"],
            }
        )
    )
    settings = SentimentSettings(sentiment_head_dir=tmp_path, sentiment_device="cpu")
    with pytest.raises(MoodmojiError, match="older moodmoji"):
        load_classifier(settings)


def test_missing_head_is_a_clear_error(tmp_path):
    settings = SentimentSettings(sentiment_head_dir=tmp_path, sentiment_device="cpu")
    with pytest.raises(MoodmojiError, match="moodmoji sentiment train"):
        load_classifier(settings)
