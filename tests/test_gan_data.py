"""The image-folder loader and its errors."""

import pytest
from PIL import Image

from gan import DataError, load_label_images, make_procedural_dataset
from gan.data import to_rgb_square


def test_loader_gives_64px_rgb_in_unit_range(procedural_data):
    images = load_label_images(procedural_data, "positive")
    assert images.shape == (24, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1


def test_any_size_and_transparency_become_64px_on_white(tmp_path):
    folder = tmp_path / "positive"
    folder.mkdir()
    Image.new("RGBA", (300, 200), (255, 0, 0, 0)).save(folder / "clear.png")  # fully transparent
    Image.new("RGB", (17, 17), (0, 0, 255)).save(folder / "tiny.jpg")
    images = load_label_images(tmp_path, "positive")
    assert images.shape == (2, 3, 64, 64)
    assert images[0].min() == 1.0  # transparent composited on white
    assert to_rgb_square(Image.new("RGB", (300, 200))).size == (64, 64)


def test_procedural_faces_differ_by_label(tmp_path):
    root = make_procedural_dataset(tmp_path, per_label=4, seed=1)
    positive = load_label_images(root, "positive")
    negative = load_label_images(root, "negative")
    assert not (positive == negative).all()


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=f"data folder {tmp_path / 'nope'} does not exist"):
        load_label_images(tmp_path / "nope", "positive")


def test_missing_label_is_named(tmp_path):
    (tmp_path / "positive").mkdir()
    with pytest.raises(DataError, match=r"label folder .*negative is missing.*found positive"):
        load_label_images(tmp_path, "negative")


def test_empty_label_is_named(tmp_path):
    (tmp_path / "negative").mkdir()
    (tmp_path / "negative" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="negative has no images"):
        load_label_images(tmp_path, "negative")


def test_corrupt_image_is_named(tmp_path):
    folder = tmp_path / "positive"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(DataError, match=r"1 unreadable image.*broken.png"):
        load_label_images(tmp_path, "positive")
