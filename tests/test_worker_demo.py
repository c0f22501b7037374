"""`moodmoji demo`: message to mood to emoji on the embedded queue, with tiny real models."""

# Fixtures come from worker_helpers: importing them is what registers them here.
# ruff: noqa: F401, F811

import io
import shutil

from PIL import Image
from worker_helpers import tiny_models

from moodmoji.cli import main
from moodmoji.terminal import half_blocks
from sentiment import Prediction as _Prediction
from worker.demo import mood_to_label, seed_for

UPPER_HALF_BLOCK = "\u2580"


def test_demo_prints_the_mood_and_saves_the_emoji(tmp_path, monkeypatch, capsys, tiny_models):
    models = tmp_path / "models"
    models.mkdir()
    for label in ("positive", "negative"):
        shutil.copyfile(tiny_models[label], models / f"{label}.pt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MOODMOJI_REGISTRY_DIR", str(tmp_path / "no-registry"))
    out = tmp_path / "emoji.png"
    status = main(
        [
            "demo",
            "what a lovely day, thank you all!",
            "--models",
            str(models),
            "--out",
            str(out),
            "--size",
            "96",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "mood: positive" in printed and str(out) in printed
    assert UPPER_HALF_BLOCK in printed
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (96, 96)


def test_demo_without_models_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOODMOJI_REGISTRY_DIR", str(tmp_path / "no-registry"))
    status = main(["demo", "hello", "--models", str(tmp_path / "nothing-here")])
    assert status == 2
    assert "has no positive checkpoint" in capsys.readouterr().err


def test_a_neutral_mood_draws_the_side_it_leans_to():
    label, mood = mood_to_label(_Prediction("neutral", 0.55, {"positive": 0.45, "negative": 0.55}))
    assert label == "negative" and "leaning negative" in mood
    assert mood_to_label(_Prediction("positive", 0.9, {}))[0] == "positive"


def test_half_blocks_draw_two_pixel_rows_per_line_in_their_colours():
    image = Image.new("RGB", (4, 4), (255, 0, 0))
    image.paste((0, 0, 255), (0, 2, 4, 4))  # bottom half blue
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    lines = half_blocks(buffer.getvalue(), width=4).splitlines()
    assert len(lines) == 2 and lines[0].count(UPPER_HALF_BLOCK) == 4
    assert "38;2;255;0;0m" in lines[0] and "48;2;255;0;0m" in lines[0]
    assert "38;2;0;0;255m" in lines[1]


def test_the_same_message_always_gets_the_same_seed():
    assert seed_for("hi there") == seed_for("hi there") != seed_for("hi there!")
