"""`dataset import`: good, corrupt, duplicate, unlabelled and odd-sized images; folder and zip."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.emoji_set import import_images, read_manifest
from moodmoji.cli import main
from moodmoji.errors import MoodmojiError


def encoded(fill, size=(48, 48), fmt="PNG", mode="RGBA") -> bytes:
    image = Image.new(mode, size, fill)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def good_and_bad() -> dict[str, bytes]:
    smile = encoded((250, 200, 0, 255))
    return {
        "positive/smile.png": smile,
        "positive/smile2.png": smile,  # same pixels: a duplicate
        "Positive/wide.jpg": encoded((10, 200, 30), size=(96, 48), fmt="JPEG", mode="RGB"),
        "negative/frown.webp": encoded((20, 40, 220, 255), fmt="WEBP"),
        "negative/half-transparent.png": encoded((200, 0, 0, 128)),
        "negative/truncated.png": encoded((1, 2, 3, 255))[:60],
        "negative/noise.png": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
        "negative/tiny.png": encoded((5, 5, 5, 255), size=(16, 16)),
        "negative/notes.txt": b"not an image",
        "unsorted/mystery.png": encoded((90, 90, 90, 255)),
        ".hidden/secret.png": encoded((1, 1, 1, 255)),
    }


def test_a_folder_import_checks_every_file_and_records_provenance(tmp_path):
    source = write_files(tmp_path / "mine", good_and_bad())
    set_dir = tmp_path / "emoji"
    report = import_images(set_dir, source, licence="CC0-1.0")

    assert report.added == {"positive": 2, "negative": 2}
    assert report.duplicates == ["positive/smile2.png"]
    assert sorted(name for name, _ in report.corrupt) == [
        "negative/noise.png",
        "negative/truncated.png",
    ]
    rejected = dict(report.rejected)
    assert set(rejected) == {"negative/tiny.png", "negative/notes.txt"}
    assert "16x16" in rejected["negative/tiny.png"]
    assert report.unlabelled == ["unsorted/mystery.png"]

    rows = read_manifest(set_dir)
    assert {r.source: r.label for r in rows} == {
        "positive/smile.png": "positive",
        "Positive/wide.jpg": "positive",
        "negative/frown.webp": "negative",
        "negative/half-transparent.png": "negative",
    }
    for r in rows:
        assert (r.style, r.how_labelled, r.codepoint) == ("import", "import", "")
        assert (r.package, r.licence) == ("mine", "CC0-1.0")
        with Image.open(set_dir / r.file) as image:
            assert (image.mode, image.size) == ("RGBA", (64, 64))
    wide = next(r for r in rows if r.source == "Positive/wide.jpg")
    with Image.open(set_dir / wide.file) as image:
        pixels = np.asarray(image)
    assert pixels[2, 32, 3] == 0  # padded to a square with transparency
    assert abs(int(pixels[32, 32, 1]) - 200) < 8 and pixels[32, 32, 3] == 255  # centred, opaque
    half = next(r for r in rows if r.source == "negative/half-transparent.png")
    with Image.open(set_dir / half.file) as image:  # its own transparency is kept
        assert np.asarray(image)[32, 32].tolist() == pytest.approx([200, 0, 0, 128], abs=2)
    assert "`mine`" in (set_dir / "ATTRIBUTION.md").read_text()


def test_a_zip_import_adds_only_what_the_set_does_not_hold(tmp_path):
    set_dir = tmp_path / "emoji"
    import_images(set_dir, write_files(tmp_path / "first", good_and_bad()))
    before = read_manifest(set_dir)

    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("faces/positive/smile-copy.png", encoded((250, 200, 0, 255)))
        zipped.writestr("faces/positive/new.png", encoded((0, 250, 250, 255), size=(64, 64)))
        zipped.writestr("faces/negative/broken.png", b"\x89PNG\r\n\x1a\nbroken")
        zipped.writestr("__MACOSX/faces/positive/._new.png", b"resource fork")
    report = import_images(set_dir, archive)

    assert report.added == {"positive": 1}
    assert report.duplicates == ["faces/positive/smile-copy.png"]  # already in the set
    assert [name for name, _ in report.corrupt] == ["faces/negative/broken.png"]
    rows = read_manifest(set_dir)
    assert len(rows) == len(before) + 1
    [new] = [r for r in rows if r.package == "faces.zip"]
    assert (new.source, new.label, new.licence) == (
        "faces/positive/new.png",
        "positive",
        "unspecified",
    )
    assert (set_dir / new.file).is_file()
    assert len(list((set_dir / "positive").glob("*.png"))) == 3


def test_nothing_new_leaves_the_set_as_it_was(tmp_path):
    set_dir = tmp_path / "emoji"
    source = write_files(tmp_path / "mine", {"negative/a.png": encoded((9, 9, 9, 255))})
    import_images(set_dir, source)
    manifest = (set_dir / "manifest.csv").read_bytes()
    report = import_images(set_dir, source)
    assert report.added == {} and report.duplicates == ["negative/a.png"]
    assert (set_dir / "manifest.csv").read_bytes() == manifest
    assert (set_dir / "positive").is_dir()  # the loader wants both label folders


def test_a_folder_that_is_not_a_set_is_refused(tmp_path):
    stranger = tmp_path / "photos"
    write_files(stranger, {"holiday.jpg": encoded((1, 2, 3), fmt="JPEG", mode="RGB")})
    source = write_files(tmp_path / "mine", {"positive/a.png": encoded((9, 9, 9, 255))})
    with pytest.raises(MoodmojiError, match="not an emoji set"):
        import_images(stranger, source)
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(MoodmojiError, match="neither a folder nor a zip"):
        import_images(tmp_path / "emoji", tmp_path / "plain.txt")


def test_the_import_command_reports_each_skipped_file_by_name(tmp_path, capsys):
    source = write_files(tmp_path / "mine", good_and_bad())
    set_dir = tmp_path / "emoji"
    assert main(["dataset", "import", str(source), "--dir", str(set_dir)]) == 0
    printed = capsys.readouterr().out
    assert "corrupt, skipped: negative/truncated.png" in printed
    assert "duplicate, dropped: positive/smile2.png" in printed
    assert "rejected: negative/tiny.png" in printed
    assert "added 2 positive, 2 negative" in printed


def test_an_emoji_saved_as_jpeg_on_white_is_imported_with_its_background_cut_out(tmp_path):
    from PIL import ImageDraw

    art = Image.new("RGB", (96, 96), (255, 255, 255))
    ImageDraw.Draw(art).ellipse((12, 12, 84, 84), fill=(250, 200, 0))
    buffer = io.BytesIO()
    art.save(buffer, format="JPEG", quality=95)
    set_dir = tmp_path / "emoji"
    import_images(set_dir, write_files(tmp_path / "mine", {"positive/face.jpg": buffer.getvalue()}))
    [row] = read_manifest(set_dir)
    with Image.open(set_dir / row.file) as image:
        pixels = np.asarray(image)
    assert image.mode == "RGBA"
    assert pixels[0, 0, 3] == 0 and pixels[32, 32, 3] == 255  # no white box around the face
