"""The image-folder loader and its errors."""

import io

import pytest
import torch
from PIL import Image

from gan import DataError, load_label_images, make_procedural_dataset, png_bytes
from gan.data import composite, tensor_to_images
from gan.images import to_rgb_square


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


def test_alpha_loads_as_a_fourth_channel_and_survives_to_a_png(tmp_path):
    folder = tmp_path / "positive"
    folder.mkdir()
    art = Image.new("RGBA", (128, 96), (0, 0, 0, 0))  # not square: padded transparent
    art.paste((250, 200, 0, 255), (40, 20, 88, 76))  # an opaque yellow block in the middle
    art.save(folder / "art.png")
    Image.new("RGB", (20, 20), (0, 0, 255)).save(folder / "photo.jpg")  # no alpha: stays opaque

    rgba = load_label_images(tmp_path, "positive", alpha=True)
    assert rgba.shape == (2, 4, 64, 64)
    art_alpha, photo_alpha = rgba[0, 3], rgba[1, 3]
    assert art_alpha[0, 0] == -1.0 and art_alpha[32, 32] == 1.0  # clear corner, opaque centre
    assert (photo_alpha == 1.0).all()
    # On white it is exactly the RGB load; on black the corner is black.
    assert composite(rgba).equal(load_label_images(tmp_path, "positive"))
    assert composite(rgba[:1], -torch.ones(3))[0, :, 0, 0].eq(-1.0).all()

    png = Image.open(io.BytesIO(png_bytes(tensor_to_images(rgba[:1], 128)[0])))
    assert png.mode == "RGBA" and png.size == (128, 128)
    assert png.getpixel((0, 0))[3] == 0 and png.getpixel((64, 64)) == (250, 200, 0, 255)


def test_procedural_faces_are_transparent_around_the_face(procedural_data):
    alpha = load_label_images(procedural_data, "negative", alpha=True)[:, 3]
    assert (alpha[:, 0, 0] == -1.0).all() and (alpha[:, 32, 32] == 1.0).all()


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


def test_an_emoji_saved_on_white_gets_its_background_cut_out_but_not_its_eyes():
    from PIL import ImageDraw

    from gan.images import cut_out_flat_background

    art = Image.new("RGB", (64, 64), (255, 255, 255))
    draw = ImageDraw.Draw(art)
    draw.ellipse((8, 8, 56, 56), fill=(250, 200, 0))
    draw.ellipse((20, 20, 28, 28), fill=(255, 255, 255))  # a white eye inside the face
    cut = cut_out_flat_background(art)
    assert cut.mode == "RGBA"
    assert cut.getpixel((0, 0))[3] == 0  # the background is gone
    assert cut.getpixel((32, 40)) == (250, 200, 0, 255)  # the face is kept
    assert cut.getpixel((24, 24)) == (255, 255, 255, 255)  # and so is its white eye
    rim = [cut.getpixel((x, 32))[3] for x in range(4, 12)]
    assert rim == sorted(rim) and 0 in rim and 255 in rim  # a soft edge, not a hard step


@pytest.mark.parametrize("kind", ["noise", "flat", "transparent"])
def test_images_without_a_flat_background_are_left_alone(kind):
    from gan.images import cut_out_flat_background

    generator = torch.Generator().manual_seed(0)
    image = {
        "noise": Image.fromarray(
            torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8).numpy()
        ),
        "flat": Image.new("RGB", (32, 32), (10, 200, 30)),  # all background: keep it all
        "transparent": Image.new("RGBA", (32, 32), (255, 255, 255, 0)),  # has its own alpha
    }[kind]
    assert cut_out_flat_background(image).tobytes() == image.convert("RGBA").tobytes()


def test_line_art_gets_a_white_inside_and_keeps_a_transparent_outside():
    from PIL import ImageDraw

    from gan.images import fill_enclosed

    glyph = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(glyph)
    draw.ellipse((8, 8, 56, 56), outline=(0, 0, 0, 255), width=3)  # a face outline
    draw.ellipse((22, 24, 26, 28), fill=(0, 0, 0, 255))  # an eye
    filled = fill_enclosed(glyph)
    assert filled.getpixel((2, 2))[3] == 0  # outside: still transparent
    assert filled.getpixel((32, 40)) == (255, 255, 255, 255)  # inside: white
    assert filled.getpixel((24, 26)) == (0, 0, 0, 255)  # the lines stay black
    open_art = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(open_art).line((8, 32, 56, 32), fill=(0, 0, 0, 255), width=3)
    assert fill_enclosed(open_art).tobytes() == open_art.tobytes()  # nothing enclosed
