"""The `hf` backend on a tiny, randomly initialised sequence-classification model saved to disk."""

import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from moodmoji.errors import MoodmojiError
from sentiment import load_classifier
from sentiment.backends import guess_label_map
from sentiment.encoder import packaged_encoder_dir
from sentiment.settings import SentimentSettings


def _tiny_model(folder, id2label):
    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder_dir(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def three_label_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-three")
    return _tiny_model(folder, {0: "negative", 1: "neutral", 2: "positive"})


def _settings(model, **extra) -> SentimentSettings:
    return SentimentSettings(
        sentiment_backend="hf",
        sentiment_hf_model=str(model),
        sentiment_device="cpu",
        sentiment_max_length=32,
        **extra,
    )


def test_three_label_model_gives_three_scores_and_valid_labels(three_label_model):
    classifier = load_classifier(_settings(three_label_model))
    predictions = classifier.classify(["I love it", "", "😡 " * 200])
    for prediction in predictions:
        assert set(prediction.scores) == {"positive", "negative", "neutral"}
        assert sum(prediction.scores.values()) == pytest.approx(1.0)
        assert prediction.label in {"positive", "negative", "neutral"}
    assert predictions[1].label == "neutral"


def test_explicit_label_map_for_unnamed_labels(tmp_path):
    model = _tiny_model(tmp_path, {0: "bad", 1: "good"})
    with pytest.raises(MoodmojiError, match="MOODMOJI_SENTIMENT_LABEL_MAP"):
        load_classifier(_settings(model))
    mapped = load_classifier(
        _settings(model, sentiment_label_map={"bad": "negative", "good": "positive"})
    )
    (prediction,) = mapped.classify(["fine"])
    assert set(prediction.scores) == {"positive", "negative"}


def test_label_map_must_name_both_moods(three_label_model):
    with pytest.raises(MoodmojiError, match="positive and negative"):
        load_classifier(_settings(three_label_model, sentiment_label_map={"negative": "negative"}))


def test_guess_label_map_conventions():
    assert guess_label_map({0: "NEG", 1: "POS"}) == {"NEG": "negative", "POS": "positive"}
    assert guess_label_map({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}) == {
        "LABEL_0": "negative",
        "LABEL_1": "neutral",
        "LABEL_2": "positive",
    }


def test_unknown_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MoodmojiError, match="cannot load hf sentiment model"):
        load_classifier(_settings(tmp_path / "no-such-model"))
