"""nade's emoji predictor: the real fastText model from the nade 0.3.1 wheel, and its fetch.

The model tests use the file the default classifier fetches into the cache on
first use (a pip download of the wheel, once); the fetch tests use fake wheels.
"""

import zipfile

import numpy as np
import pytest

from moodmoji.errors import MoodmojiError
from sentiment.emoji_model import (
    EMOJIS,
    MODEL_MEMBER,
    WHEEL_FILENAME,
    EmojiPredictor,
    fetch_emoji_model,
    nade_text,
)
from sentiment.settings import SentimentSettings


@pytest.fixture(scope="module")
def predictor() -> EmojiPredictor:
    return EmojiPredictor(fetch_emoji_model(SentimentSettings().sentiment_cache_dir))


def test_probabilities_are_one_row_of_151_per_text_in_order(predictor):
    texts = ["i love you so much", "i hate this so much", "", "two\nlines"]
    probabilities = predictor.probabilities(texts)
    assert probabilities.shape == (4, EMOJIS) and probabilities.dtype == np.float32
    # One probability per emoji (the model scores each on its own: rows need not sum to 1).
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert (probabilities.max(1) > 5 / EMOJIS).all()  # not flat: some emoji stands out
    love, hate = probabilities[0], probabilities[1]
    assert love.argmax() != hate.argmax()
    assert np.array_equal(predictor.probabilities(texts[1:2])[0], hate)  # batch = alone
    assert predictor.probabilities([]).shape == (0, EMOJIS)


def test_love_and_hate_read_apart_through_the_emojis(predictor):
    # The same emoji columns light up for texts of one mood, others for the opposite.
    happy = predictor.probabilities(["best day ever", "so happy for you", "this is amazing"])
    sad = predictor.probabilities(["worst day ever", "i miss him so much", "this is awful"])
    within = np.corrcoef(happy)[np.triu_indices(3, 1)].mean()
    across = np.corrcoef(np.vstack([happy, sad]))[:3, 3:].mean()
    assert within > across + 0.2


def test_text_is_written_the_way_nade_trained_on_it():
    assert nade_text("Wow!!!  That's  GREAT,ok") == "wow !!! that ' s great , ok"


def _wheel(path, member, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)


def test_a_wheel_without_the_model_is_a_clear_error(tmp_path):
    (tmp_path / "downloads").mkdir()
    _wheel(tmp_path / "downloads" / WHEEL_FILENAME, "nade/other.txt", b"x")
    with pytest.raises(MoodmojiError, match="has no"):
        fetch_emoji_model(tmp_path)


def test_a_model_that_is_not_the_expected_file_is_refused(tmp_path):
    (tmp_path / "downloads").mkdir()
    _wheel(tmp_path / "downloads" / WHEEL_FILENAME, MODEL_MEMBER, b"not the model")
    with pytest.raises(MoodmojiError, match="not the expected file"):
        fetch_emoji_model(tmp_path)
    assert not (tmp_path / "nade_250k_hp.ftz").exists()
