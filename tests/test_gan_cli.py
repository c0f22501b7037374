"""`moodmoji train | sample | evaluate | plot` as a user runs them, and their errors."""

import json

import pytest
import torch
from PIL import Image

from moodmoji.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_plot_then_sample(capsys, procedural_data, tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = run(
        capsys,
        "train",
        "--model",
        "proposed",
        "--label",
        "positive",
        "--data",
        procedural_data,
        "--out",
        run_dir,
        "--width",
        8,
        "--epochs",
        2,
        "--eval-every",
        0,
        "--other-labels-weight",
        0.5,
        "--body",
        "fastgan",
        "--rgba",
        "--device",
        "cpu",
    )
    assert code == 0 and "checkpoint:" in out
    assert (run_dir / "checkpoint.pt").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["other_labels_weight"], config["body"], config["channels"]) == (
        0.5,
        "fastgan",
        4,
    )
    assert [json.loads(line)["epoch"] for line in (run_dir / "log.jsonl").open()] == [1, 2]

    code, out, _ = run(capsys, "plot", run_dir, "--samples", 8)
    assert code == 0
    for name in ("losses.png", "samples-run.png"):
        assert Image.open(run_dir / "figures" / name).size[0] > 100

    code, out, _ = run(
        capsys,
        "sample",
        run_dir,
        "-n",
        3,
        "--size",
        128,
        "--out",
        tmp_path / "s",
        "--grid",
        tmp_path / "grid.png",
        "--device",
        "cpu",
    )
    assert code == 0
    pngs = sorted((tmp_path / "s").glob("*.png"))
    assert len(pngs) == 3
    assert (Image.open(pngs[0]).size, Image.open(pngs[0]).mode) == ((128, 128), "RGBA")
    grid = Image.open(tmp_path / "grid.png")
    # The emojis on Discord's light theme, then on its dark theme.
    assert grid.getpixel((0, 0)) == (255, 255, 255)
    assert grid.getpixel((0, grid.height - 1)) == (49, 51, 56)


def test_evaluate_prints_and_saves_scores(
    capsys, procedural_data, tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("MOODMOJI_CACHE_DIR", str(tmp_path / "cache"))
    code, out, _ = run(
        capsys,
        "evaluate",
        tiny_checkpoint,
        "--data",
        procedural_data,
        "--samples",
        8,
        "--metrics",
        "fid,precision,recall,colours,memorised,class_consistency",
        "--json",
        tmp_path / "scores.json",
        "--sheet",
        tmp_path / "sheet.png",
        "--device",
        "cpu",
    )
    assert code == 0 and "fid" in out and "sheet:" in out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["fid"] > 0 and 0 <= scores["class_consistency"] <= 1
    assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
    assert scores["colours"] >= 1 and 0 <= scores["memorised"] <= 1
    assert Image.open(tmp_path / "sheet.png").size == (8 * 130 + 2, 2 * (130 + 2))


def error_line(capsys, *argv) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one clear line, no traceback
    assert lines[0].startswith("moodmoji: error: ")
    return lines[0]


def train_error(capsys, data, tmp_path) -> str:
    """The error line of a one-epoch tiny training run on `data`."""
    args = ("--out", tmp_path / "r", "--width", 8, "--epochs", 1, "--device", "cpu")
    return error_line(capsys, "train", "--data", data, *args)


def test_missing_data_folder(capsys, tmp_path):
    line = train_error(capsys, tmp_path / "missing", tmp_path)
    assert "missing does not exist" in line


def test_empty_label(capsys, tmp_path):
    (tmp_path / "data" / "positive").mkdir(parents=True)
    line = train_error(capsys, tmp_path / "data", tmp_path)
    assert "positive has no images" in line


def test_corrupt_image(capsys, tmp_path):
    folder = tmp_path / "data" / "positive"
    folder.mkdir(parents=True)
    (folder / "smile.png").write_bytes(b"garbage")
    line = train_error(capsys, tmp_path / "data", tmp_path)
    assert "smile.png" in line


@pytest.mark.parametrize("content", ["text", "torch-dict", "empty"])
def test_wrong_checkpoint_file(capsys, tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "text":
        path.write_text("hello")
    elif content == "torch-dict":
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(b"")
    line = error_line(capsys, "sample", path, "--out", tmp_path / "s", "--device", "cpu")
    assert "is not a moodmoji checkpoint" in line


def test_missing_checkpoint(capsys, tmp_path):
    line = error_line(capsys, "sample", tmp_path / "nope.pt", "--device", "cpu")
    assert "does not exist" in line


def test_unavailable_device(capsys, procedural_data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    line = error_line(
        capsys, "train", "--data", procedural_data, "--out", tmp_path / "r", "--device", "cuda"
    )
    assert "no CUDA device" in line
