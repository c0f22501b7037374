"""Hostile uploads (issue 16, item 5): bounded by what is really inflated and decoded.

Each zip is built for real, down to the byte that lies: a header that declares 1,000
bytes over 300 MB of zeros, a bad CRC, a broken central directory, deflate64, an
encrypted entry; folders with links out of them and a FIFO; images whose pixels or CPU
time go past the budget. Every one is refused (or left out) with one line naming the
file and the limit, and nothing is read from outside the upload.
"""

import io
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from worker_helpers import retrain_settings

from worker.retraining import UploadRefused, prepare_data


def png(fill=(250, 200, 0), size=(48, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, fill).save(buffer, format="PNG")
    return buffer.getvalue()


def faces() -> dict[str, bytes]:
    return {
        f"{label}/{i}.png": png((40 * i, 200 if label == "positive" else 20, 90))
        for label in ("positive", "negative")
        for i in range(3)
    }


def refusal(source: Path, tmp_path: Path, **overrides) -> str:
    """prepare_data's one-line refusal of `source`."""
    job = tmp_path / "jobs" / "job"
    job.mkdir(parents=True, exist_ok=True)
    settings = retrain_settings(tmp_path, tmp_path / "registry", retrain_min_images=2, **overrides)
    with pytest.raises(UploadRefused) as refused:
        prepare_data(source, job, settings)
    message = str(refused.value)
    assert "\n" not in message and "Traceback" not in message
    assert not (job / "data").exists()
    return message


def write_zip(path: Path, entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def patch_headers(path: Path, name: str, offset_local: int, offset_central: int, value: bytes):
    """Overwrite a field of `name`'s local and central directory headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, field_offset, name_offset in (
        (b"PK\x03\x04", offset_local, 30),
        (b"PK\x01\x02", offset_central, 46),
    ):
        start = 0
        while True:
            at = data.index(signature, start)
            if data[at + name_offset : at + name_offset + len(encoded)] == encoded:
                data[at + field_offset : at + field_offset + len(value)] = value
                break
            start = at + 4
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def lying_zip(tmp_path_factory) -> Path:
    """positive/zeros.png: 300 MB of zeros that the headers say are 1,000 bytes (300 kB)."""
    path = tmp_path_factory.mktemp("bomb") / "lying.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in faces().items():
            archive.writestr(name, data)
        info = zipfile.ZipInfo("positive/zeros.png")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as entry:
            chunk = bytes(1024 * 1024)
            for _ in range(300):
                entry.write(chunk)
    patch_headers(path, "positive/zeros.png", 22, 24, struct.pack("<I", 1000))
    return path


def test_a_header_that_lies_about_its_size_costs_no_more_than_it_says(lying_zip, tmp_path):
    assert lying_zip.stat().st_size < 2 * 1024 * 1024
    assert zipfile.ZipFile(lying_zip).getinfo("positive/zeros.png").file_size == 1000
    tracemalloc.start()
    try:
        message = refusal(lying_zip, tmp_path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "'positive/zeros.png' is damaged" in message  # its CRC is not that of 1,000 bytes
    # Before: the whole 300 MB was inflated in one call (twice, with the copy).
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"


def test_a_folder_file_past_the_per_file_limit_is_refused_unread(tmp_path):
    source = tmp_path / "upload"
    for name, data in faces().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    (source / "positive" / "big.png").write_bytes(os.urandom(3 * 1024 * 1024))
    message = refusal(source, tmp_path, retrain_max_file_bytes=1024 * 1024)
    assert (
        message == "positive/big.png is over 1048576 bytes; at most 1048576 per file are accepted"
    )


def test_a_bad_crc_is_refused_in_one_line(tmp_path):
    path = write_zip(tmp_path / "crc.zip", faces(), zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    target = faces()["negative/2.png"]
    at = data.index(target)
    data[at + len(target) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "'negative/2.png' is damaged (Bad CRC-32" in refusal(path, tmp_path)


def test_a_corrupt_central_directory_is_refused_in_one_line(tmp_path):
    path = write_zip(tmp_path / "directory.zip", faces())
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at : at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    assert "directory.zip is a damaged zip" in refusal(path, tmp_path)


@pytest.mark.parametrize(
    ("offset", "value", "expected"),
    [
        ((8, 10), struct.pack("<H", 9), "'positive/0.png' is compressed with deflate64"),
        ((6, 8), struct.pack("<H", 1), "'positive/0.png' is encrypted"),
    ],
    ids=["deflate64", "encrypted"],
)
def test_entries_zipfile_cannot_read_are_refused_in_one_line(tmp_path, offset, value, expected):
    path = write_zip(tmp_path / "odd.zip", faces())
    patch_headers(path, "positive/0.png", *offset, value)
    assert expected in refusal(path, tmp_path)


def test_decoded_pixels_are_bounded(tmp_path):
    big = {f"positive/{i}.png": png((i, 9, 9), (2048, 2048)) for i in range(3)}
    path = write_zip(tmp_path / "pixels.zip", {**faces(), **big})
    message = refusal(path, tmp_path, retrain_max_pixels=10_000_000)
    assert "positive/2.png (2048x2048) takes the import past 10000000 decoded pixels" in message


def test_cpu_time_is_bounded(tmp_path):
    path = write_zip(tmp_path / "cpu.zip", faces())
    message = refusal(path, tmp_path, retrain_max_import_cpu_s=1e-6)
    assert "s of CPU by " in message and "at most 1e-06 s are accepted" in message


def test_a_folder_import_follows_no_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    (outside / "faces").mkdir(parents=True)
    (outside / "secret.png").write_bytes(png((1, 2, 3)))
    (outside / "faces" / "more.png").write_bytes(png((4, 5, 6)))
    source = tmp_path / "upload"
    for name, data in faces().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    (source / "positive" / "link.png").symlink_to(outside / "secret.png")
    (source / "negative" / "linked").symlink_to(outside / "faces", target_is_directory=True)
    os.mkfifo(source / "negative" / "pipe.png")  # opening it would wait forever
    job = tmp_path / "jobs" / "job"
    job.mkdir(parents=True)
    settings = retrain_settings(tmp_path, tmp_path / "registry", retrain_min_images=2)
    data = prepare_data(source, job, settings)
    assert data.images == {"positive": 3, "negative": 3}  # neither outside image
    assert "positive/link.png (a symbolic link; links are not followed)" in data.skipped
    assert "negative/linked (a symbolic link; links are not followed)" in data.skipped
    assert "negative/pipe.png (not a regular file)" in data.skipped
    assert not any("more.png" in s or "secret" in s for s in data.skipped)
