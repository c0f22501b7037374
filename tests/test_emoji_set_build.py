"""`dataset build` end to end on tiny fake packages, the package cache, and the CLI."""

import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.emoji_set import (
    ART_STYLES,
    ArtStyle,
    EmojiSetSettings,
    build_emoji_set,
    import_images,
    read_manifest,
)
from gan.emoji_set.labels import RankingCounts
from gan.emoji_set.packages import (
    ICONIFY_FILES,
    NpmPackage,
    cache_entry,
    ensure_package,
    is_cached,
)
from moodmoji.cli import main
from moodmoji.errors import MoodmojiError

# (hexcode, label, group, subgroup) as Emojibase lists them.
EMOJIS = [
    ("1F600", "grinning face", 0, 0),
    ("1F60A", "smiling face with smiling eyes", 0, 0),
    ("1F642", "slightly smiling face", 0, 0),  # not in the ranking: sub-group says positive
    ("1F602", "face with tears of joy", 0, 0),  # ranking score 0.2: dropped
    ("1F63A", "grinning cat", 0, 3),
    ("1F622", "crying face", 0, 1),
    ("1F620", "angry face", 0, 4),
    ("1F629", "weary face", 0, 1),  # not in the ranking: sub-group says negative
    ("1F921", "clown face", 0, 2),  # costume: left out
    ("1F44D", "thumbs up", 1, 5),  # not a face
]
SUBGROUPS = {
    "0": "face-smiling",
    "1": "face-concerned",
    "2": "face-costume",
    "3": "cat-face",
    "4": "face-negative",
    "5": "hand-fingers-closed",
}
RANKING = {
    "1f600": RankingCounts(negative=0, neutral=5, positive=15),  # 0.75
    "1f60a": RankingCounts(negative=0, neutral=6, positive=14),
    "1f602": RankingCounts(negative=4, neutral=8, positive=8),
    "1f63a": RankingCounts(negative=0, neutral=8, positive=12),
    "1f622": RankingCounts(negative=10, neutral=8, positive=2),
    "1f620": RankingCounts(negative=10, neutral=10, positive=0),
    "1f921": RankingCounts(negative=0, neutral=5, positive=15),
    "1f44d": RankingCounts(negative=0, neutral=5, positive=15),
}
POSITIVE_CODES = {"1f600", "1f60a", "1f642", "1f63a"}
NEGATIVE_CODES = {"1f622", "1f620", "1f629"}


def colour(*parts: str) -> str:
    return "#" + hashlib.sha256("/".join(parts).encode()).hexdigest()[:6]


def square(fill: str) -> str:
    return f'<rect x="2" y="2" width="12" height="12" fill="{fill}"/>'


def put_in_cache(cache_dir: Path, package: NpmPackage, files: dict[str, bytes | str]) -> None:
    root = cache_entry(cache_dir, package) / "package"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (root.parent / ".complete").write_text("test\n")


def iconify_files(prefix: str, icons: dict, chars: dict | None, licence: str) -> dict:
    files = {
        "package.json": json.dumps({"name": prefix, "version": "1.0.0"}),
        "icons.json": json.dumps({"prefix": prefix, "width": 16, "height": 16, "icons": icons}),
        "info.json": json.dumps(
            {"author": {"name": f"{prefix} artists"}, "license": {"spdx": licence}}
        ),
    }
    if chars is not None:
        files["chars.json"] = json.dumps(chars)
    return files


def png_bytes(fill: str, size: int = 40) -> bytes:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    image.paste(Image.new("RGBA", (size // 2, size // 2), fill), (size // 4, size // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def fake_sources(tmp_path):
    """A cache holding a fake Emojibase and three tiny art styles; returns build kwargs."""
    cache = tmp_path / "cache"
    metadata = NpmPackage("fake-emojibase", "1.0.0", None, ("en/data.json",))
    data = [{"hexcode": "1F1E6", "label": "regional indicator A", "emoji": "🇦"}] + [
        {
            "hexcode": code,
            "label": label,
            "emoji": chr(int(code, 16)),
            "group": group,
            "subgroup": sub,
        }
        for code, label, group, sub in EMOJIS
    ]
    groups = {"groups": {"0": "smileys-emotion", "1": "people-body"}, "subgroups": SUBGROUPS}
    put_in_cache(
        cache,
        metadata,
        {"en/data.json": json.dumps(data), "meta/groups.json": json.dumps(groups)},
    )

    alpha = ArtStyle("alpha", NpmPackage("@fake/alpha", "1.0.0", None, ICONIFY_FILES))
    alpha_icons = {f"icon-{code}": {"body": square(colour("alpha", code))} for code, *_ in EMOJIS}
    alpha_chars = {code.lower(): f"icon-{code}" for code, *_ in EMOJIS}
    put_in_cache(cache, alpha.package, iconify_files("alpha", alpha_icons, alpha_chars, "MIT"))

    # No code point map: matched by name. Its grinning face is pixel-identical to alpha's.
    beta = ArtStyle("beta", NpmPackage("@fake/beta", "2.0.0", None, ICONIFY_FILES))
    beta_icons = {
        "grinning-face": {"body": square(colour("alpha", "1F600"))},
        "smiling-face-with-smiling-eyes": {"body": square(colour("beta", "1F60A"))},
        "crying-face": {"body": square(colour("beta", "1F622"))},
        "clown-face": {"body": square(colour("beta", "1F921"))},
    }
    put_in_cache(cache, beta.package, iconify_files("beta", beta_icons, None, "CC-BY-4.0"))

    gamma = ArtStyle(
        "gamma", NpmPackage("@fake/gamma", "3.0.0", None, ("package.json",)), "images", "assets"
    )
    gamma_files = {
        f"assets/{code}.png": png_bytes(colour("gamma", code))
        for code in ("1f600", "1f622", "1f620", "1f629")
    }
    gamma_files["package.json"] = json.dumps({"license": "MIT", "author": "Gamma Studio"})
    put_in_cache(cache, gamma.package, gamma_files)

    return {
        "styles": [alpha, beta, gamma],
        "cache_dir": cache,
        "ranking": RANKING,
        "metadata": metadata,
        "npm": str(tmp_path / "no-npm-needed"),  # every package is cached: never called
    }


def test_build_labels_balances_and_records_provenance(tmp_path, fake_sources):
    out = tmp_path / "emoji"
    report = build_emoji_set(out, **fake_sources)

    # 6 positive (alpha 4, beta 1 after the duplicate, gamma 1) and 7 negative: 6 each.
    assert report.available == {"positive": 6, "negative": 7}
    assert report.duplicates_dropped == 1
    assert report.per_class == 6
    assert report.labelled_faces == {"positive": 4, "negative": 3}
    assert (report.agreement.compared, report.agreement.agreed) == (4, 4)
    for label in ("positive", "negative"):
        files = sorted((out / label).glob("*.png"))
        assert len(files) == 6
        for path in files:
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (64, 64))
                assert np.asarray(image)[0, 0, 3] == 0  # the art's transparent corner

    rows = read_manifest(out)
    assert len(rows) == 12 and {r.file for r in rows} == {
        p.relative_to(out).as_posix() for p in out.glob("*/*.png")
    }
    codes = {r.label: set() for r in rows}
    for r in rows:
        codes[r.label].add(r.codepoint)
    assert codes["positive"] <= POSITIVE_CODES and codes["negative"] <= NEGATIVE_CODES
    by_key = {(r.style, r.codepoint): r for r in rows}
    grinning = by_key.get(("alpha", "1f600"))
    if grinning:  # it may have lost the balancing draw
        assert (grinning.how_labelled, grinning.score) == ("ranking", "0.750")
        assert (grinning.package, grinning.version, grinning.licence) == (
            "@fake/alpha",
            "1.0.0",
            "MIT",
        )
        assert grinning.source == "icon-1F600 (chars.json)"
    for r in rows:
        if r.codepoint in ("1f642", "1f629"):
            assert (r.how_labelled, r.score) == ("subgroup", "")
    assert {r.licence for r in rows if r.style == "beta"} <= {"CC-BY-4.0"}
    assert not any(r.codepoint in ("1f602", "1f921", "1f44d") for r in rows)

    attribution = (out / "ATTRIBUTION.md").read_text()
    for style in {r.style for r in rows}:
        assert f"## {style}:" in attribution
    assert "Gamma Studio" in attribution
    if any(r.style == "beta" for r in rows):
        assert "creativecommons.org/licenses/by/4.0" in attribution


def test_balance_options_and_the_seeded_draw(tmp_path, fake_sources):
    unbalanced = build_emoji_set(tmp_path / "all", balance="none", **fake_sources)
    assert unbalanced.per_class is None and unbalanced.total == 13

    first = build_emoji_set(tmp_path / "a", balance=4, seed=5, **fake_sources)
    again = build_emoji_set(tmp_path / "b", balance=4, seed=5, **fake_sources)
    assert first.written == again.written
    assert [r.file for r in read_manifest(tmp_path / "a")] == [
        r.file for r in read_manifest(tmp_path / "b")
    ]
    assert sum(n for (label, _), n in first.written.items() if label == "negative") == 4

    with pytest.raises(MoodmojiError, match=r"cannot balance to 7 per label.*6 positive"):
        build_emoji_set(tmp_path / "c", balance=7, **fake_sources)
    assert not (tmp_path / "c").exists()


def test_a_failed_build_leaves_the_previous_set_untouched(tmp_path, fake_sources, monkeypatch):
    out = tmp_path / "emoji"
    build_emoji_set(out, seed=1, **fake_sources)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    import gan.emoji_set.build as build_module

    written = []

    def failing_save(image, path):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")

    monkeypatch.setattr(build_module, "save_png", failing_save)
    with pytest.raises(OSError, match="disk full"):
        build_emoji_set(out, seed=2, **fake_sources)

    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_rebuild_keeps_images_an_operator_imported(tmp_path, fake_sources):
    out = tmp_path / "emoji"
    build_emoji_set(out, **fake_sources)
    mine = tmp_path / "mine" / "negative"
    mine.mkdir(parents=True)
    (mine / "grumpy.png").write_bytes(png_bytes("#123456", size=48))
    assert import_images(out, tmp_path / "mine", licence="CC0-1.0").added["negative"] == 1

    report = build_emoji_set(out, seed=9, **fake_sources)
    assert report.imports_kept == 1
    [imported] = [r for r in read_manifest(out) if r.how_labelled == "import"]
    assert (out / imported.file).is_file() and imported.licence == "CC0-1.0"
    assert "`mine`: 1 images, licence CC0-1.0" in (out / "ATTRIBUTION.md").read_text()


# --- the package cache, with a stand-in npm that serves a local tarball ---------------------

FAKE_NPM = """#!/bin/sh
echo "$@" >> "$FAKE_NPM_LOG"
if [ -n "$FAKE_NPM_FAIL" ]; then
  echo "npm error code ENOTFOUND" >&2
  echo "npm error request to the registry failed" >&2
  exit 1
fi
dest=""; previous=""
for arg in "$@"; do
  if [ "$previous" = "--pack-destination" ]; then dest="$arg"; fi
  previous="$arg"
done
cp "$FAKE_NPM_TARBALL" "$dest/"
"""


def make_tarball(path: Path, name: str, version: str, truncate: bool = False) -> str:
    files = {
        "package/package.json": json.dumps({"name": name, "version": version}).encode(),
        "package/icons.json": json.dumps({"prefix": "x", "icons": {}}).encode() * 50,
        "package/info.json": b"{}",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member_name, content in files.items():
            info = tarfile.TarInfo(member_name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    script = tmp_path / "npm"
    script.write_text(FAKE_NPM)
    script.chmod(0o755)
    log = tmp_path / "npm.log"
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(tmp_path / "served.tgz"))
    monkeypatch.delenv("FAKE_NPM_FAIL", raising=False)
    return script, log


def test_a_fetched_package_is_verified_unpacked_and_reused(tmp_path, fake_npm):
    npm, log = fake_npm
    integrity = make_tarball(tmp_path / "served.tgz", "@fake/art", "1.2.3")
    package = NpmPackage("@fake/art", "1.2.3", integrity, ICONIFY_FILES)
    cache = tmp_path / "cache"
    # A stale entry from an interrupted run: no marker, so it is fetched again.
    (cache_entry(cache, package) / "package").mkdir(parents=True)

    root = ensure_package(package, cache, npm=str(npm))
    assert is_cached(cache, package)
    assert json.loads((root / "package.json").read_text())["version"] == "1.2.3"
    assert "pack @fake/art@1.2.3" in log.read_text()

    assert ensure_package(package, cache, npm=str(npm)) == root
    assert len(log.read_text().splitlines()) == 1  # the second call used the cache
    assert [p.name for p in cache.iterdir()] == [cache_entry(cache, package).name]


@pytest.mark.parametrize(
    ("truncate", "pinned", "message"),
    [
        (False, "sha512-" + base64.b64encode(b"\0" * 64).decode(), "different checksum"),
        (True, None, "damaged"),
    ],
)
def test_bad_downloads_never_become_cache_entries(tmp_path, fake_npm, truncate, pinned, message):
    npm, _ = fake_npm
    make_tarball(tmp_path / "served.tgz", "@fake/art", "1.2.3", truncate=truncate)
    package = NpmPackage("@fake/art", "1.2.3", pinned, ICONIFY_FILES)
    cache = tmp_path / "cache"
    with pytest.raises(MoodmojiError, match=message):
        ensure_package(package, cache, npm=str(npm))
    assert not is_cached(cache, package)
    assert list(cache.iterdir()) == []


def test_an_unreachable_registry_names_the_package_and_the_retry(tmp_path, fake_npm, monkeypatch):
    npm, _ = fake_npm
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    package = NpmPackage("@fake/art", "1.2.3", None, ICONIFY_FILES)
    with pytest.raises(MoodmojiError) as caught:
        ensure_package(package, tmp_path / "cache", npm=str(npm))
    message = str(caught.value)
    assert "@fake/art@1.2.3" in message and "ENOTFOUND" in message
    assert "moodmoji dataset build" in message and "\n" not in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_npm_is_one_clear_error(tmp_path):
    package = NpmPackage("@fake/art", "1.2.3", None, ICONIFY_FILES)
    with pytest.raises(MoodmojiError, match=r"npm .* is not installed"):
        ensure_package(package, tmp_path / "cache", npm=str(tmp_path / "absent-npm"))


# --- the command line ----------------------------------------------------------------------


def test_show_prints_counts_and_writes_a_contact_sheet(tmp_path, fake_sources, capsys):
    out = tmp_path / "emoji"
    build_emoji_set(out, **fake_sources)
    sheet = tmp_path / "sheet.png"
    assert main(["dataset", "show", "--dir", str(out), "--sheet", str(sheet)]) == 0
    printed = capsys.readouterr().out
    assert "alpha" in printed and "total" in printed
    total_line = next(line for line in printed.splitlines() if line.startswith("total"))
    assert total_line.split()[1:] == ["6", "6", "12"]
    with Image.open(sheet) as image:
        assert image.width > 64 and image.height > 2 * 64


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dataset", "build", "--styles", "noto,crayon"], "unknown style crayon"),
        (["dataset", "build", "--balance", "lots"], "--balance takes"),
        (["dataset", "show", "--dir", "nowhere-at-all"], "no emoji set manifest"),
        (["dataset", "import", "nowhere-at-all.zip"], "does not exist"),
    ],
)
def test_user_mistakes_are_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


@pytest.mark.slow
def test_the_real_build_gives_a_balanced_set_of_700_or_more(tmp_path):
    """Fetches the pinned packages into the user's cache on first run (network)."""
    settings = EmojiSetSettings()
    report = build_emoji_set(
        tmp_path / "emoji", list(ART_STYLES.values()), settings.art_cache_dir()
    )
    assert report.total >= 700
    positives = len(os.listdir(tmp_path / "emoji" / "positive"))
    assert positives == len(os.listdir(tmp_path / "emoji" / "negative")) == report.per_class
    assert report.agreement.agreed == report.agreement.compared > 0
    for style in report.styles:
        if style.name_check:
            assert style.name_check.agreed == style.name_check.compared
