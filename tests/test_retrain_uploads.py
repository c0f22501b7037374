"""Bad uploads are refused with one clear line, and nothing lands outside the job's folder."""

# ruff: noqa: F401, F811

import asyncio
import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from worker_helpers import make_registry, queue_settings, retrain_settings, running, tiny_models

from worker import InProcessTransport, WorkerClient
from worker.retraining import RetrainSettings, UploadRefused, check_promotion, prepare_data
from worker.service import SamplingService


def png(fill=(250, 200, 0), size=(48, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, fill).save(buffer, format="PNG")
    return buffer.getvalue()


def settings_for(tmp_path: Path, **overrides) -> RetrainSettings:
    return retrain_settings(
        tmp_path, tmp_path / "registry", **{"retrain_min_images": 2, **overrides}
    )


def make_zip(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def good_faces() -> dict[str, bytes]:
    return {
        f"{label}/{i}.png": png((40 * i, 200 if label == "positive" else 20, 90))
        for label in ("positive", "negative")
        for i in range(3)
    }


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def upload_cases(root: Path) -> dict[str, tuple[Path, str]]:
    root.mkdir(parents=True, exist_ok=True)
    not_zip = root / "faces.zip"
    not_zip.write_bytes(b"PK? no, just a text file")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("positive/huge.png", b"\0" * (8 * 1024 * 1024))
    (root / "bomb.zip").write_bytes(bomb.getvalue())
    return {
        "not a zip": (not_zip, "is not a zip file"),
        "no images": (
            make_zip(root / "empty.zip", {"readme.txt": b"hello", "positive/notes.txt": b"x"}),
            "not enough usable images (0 positive, 0 negative",
        ),
        "wrong kind": (
            make_zip(
                root / "wrong.zip",
                {
                    "positive/a.png": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                    "positive/b.png": png(size=(8, 8)),
                    "negative/c.jpg": b"\xff\xd8\xff not really",
                },
            ),
            "positive/a.png (not an image Pillow can read)",
        ),
        "zip bomb": (root / "bomb.zip", "like a zip bomb"),
        "path traversal": (
            make_zip(root / "climb.zip", {**good_faces(), "../../outside/positive/x.png": png()}),
            "points outside the archive",
        ),
        "absolute path": (
            make_zip(root / "abs.zip", {**good_faces(), "/tmp/positive/x.png": png()}),
            "points outside the archive",
        ),
        "symlink": (
            make_zip(root / "link.zip", good_faces(), links=("positive/link.png",)),
            "is a symbolic link",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a zip",
        "no images",
        "wrong kind",
        "zip bomb",
        "path traversal",
        "absolute path",
        "symlink",
    ],
)
def test_a_bad_upload_is_refused_and_writes_nothing_outside_the_job(tmp_path, case):
    source, message = upload_cases(tmp_path / "uploads")[case]
    job_dir = tmp_path / "jobs" / "job1"
    job_dir.mkdir(parents=True)
    before = files_under(tmp_path) - files_under(job_dir)
    with pytest.raises(UploadRefused) as refused:
        prepare_data(source, job_dir, settings_for(tmp_path))
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert files_under(tmp_path) - files_under(job_dir) == before
    assert not (job_dir / "data").exists()  # a refused upload leaves no data set behind


def test_a_good_zip_becomes_the_jobs_data_with_a_manifest(tmp_path):
    source = make_zip(tmp_path / "faces.zip", {**good_faces(), "positive/notes.txt": b"x"})
    job_dir = tmp_path / "jobs" / "job1"
    job_dir.mkdir(parents=True)
    data = prepare_data(source, job_dir, settings_for(tmp_path))
    assert data.images == {"positive": 3, "negative": 3}
    assert data.skipped == ["positive/notes.txt (not an image file type)"]
    assert (job_dir / "data" / "manifest.csv").is_file()
    assert len(list((job_dir / "data" / "positive").glob("*.png"))) == 3
    # Prepared once: a resumed job finds it and does not import again.
    assert prepare_data(source, job_dir, settings_for(tmp_path)).digest == data.digest


def test_too_large_an_upload_is_refused_before_it_is_opened(tmp_path):
    source = make_zip(tmp_path / "faces.zip", good_faces())
    job_dir = tmp_path / "jobs" / "job1"
    job_dir.mkdir(parents=True)
    with pytest.raises(UploadRefused, match="at most 1024 are accepted"):
        prepare_data(source, job_dir, settings_for(tmp_path, retrain_max_upload_bytes=1024))


# --- a worker under load switches versions with no failed request ---------------------------


async def test_a_worker_under_load_switches_on_promote_and_rollback_without_failing(
    tmp_path, tiny_models
):
    settings = queue_settings("retrain-load", registry_poll_s=0.05)
    registry = make_registry(tmp_path / "registry", tiny_models)
    registry.update_meta("v2", {"metrics": {"positive": {"fid": 1.0, "kid": 0.01}}})
    registry.update_meta("v1", {"metrics": {"positive": {"fid": 2.0, "kid": 0.02}}})
    registry.update_meta("v2", {"comparisons": {"v1": registry.meta("v1")["metrics"]}})
    transport = InProcessTransport()
    results, versions_seen = [], set()
    async with (
        running(SamplingService(transport, settings, registry=registry)) as service,
        WorkerClient(transport, settings) as client,
    ):
        stop = asyncio.Event()

        async def load(user: int) -> None:
            seed = 0
            while not stop.is_set():
                seed += 1
                result = await client.generate("positive", seed=seed, size=32)
                results.append(result)
                versions_seen.add(service.model_version)

        clients = [asyncio.create_task(load(u)) for u in range(4)]
        assert check_promotion(registry, "v2").allowed
        registry.promote("v2")
        while service.model_version != "v2":
            await asyncio.sleep(0.02)
        registry.rollback()
        while service.model_version != "v1":
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*clients)
    assert versions_seen >= {"v1", "v2"}
    assert results and all(r.ok for r in results)
    assert len({r.model_version for r in results}) == 2  # answers came from both versions
