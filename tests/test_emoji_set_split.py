"""The codepoint-grouped split and the manifest it reads."""

import pytest

from gan.emoji_set import ManifestRow, read_manifest, split_by_codepoint
from gan.emoji_set.manifest import COLUMNS, write_manifest
from moodmoji.errors import MoodmojiError

STYLES = ("noto", "twemoji", "openmoji")


def row(codepoint: str, style: str, label: str, how: str = "ranking") -> ManifestRow:
    name = f"{style}__{codepoint}" if codepoint else f"import__{style}"
    return ManifestRow(
        file=f"{label}/{name}.png",
        codepoint=codepoint,
        name=f"face {codepoint}",
        style=style,
        label=label,
        how_labelled=how,
        score="0.500" if how == "ranking" else "",
        package=f"@iconify-json/{style}",
        version="1.0.0",
        licence="MIT",
        source=f"{codepoint} (chars.json)",
        sha256=f"{codepoint}{style}",
    )


def make_rows(positive: int = 10, negative: int = 12) -> list[ManifestRow]:
    rows = []
    for index in range(positive):
        rows += [row(f"1f6{index:02x}", style, "positive") for style in STYLES]
    for index in range(negative):
        rows += [row(f"1f9{index:02x}", style, "negative") for style in STYLES[: 1 + index % 3]]
    return rows


def test_every_style_of_an_emoji_lands_on_the_same_side():
    rows = make_rows()
    train, test = split_by_codepoint(rows, test_fraction=0.3, seed=1)
    assert sorted(train + test, key=lambda r: r.file) == sorted(rows, key=lambda r: r.file)
    assert not {r.codepoint for r in train} & {r.codepoint for r in test}


def test_both_sides_keep_both_labels_in_proportion():
    train, test = split_by_codepoint(make_rows(positive=10, negative=12), 0.25, seed=0)
    test_codes = {(r.label, r.codepoint) for r in test}
    assert sum(label == "positive" for label, _ in test_codes) == round(0.25 * 10)
    assert sum(label == "negative" for label, _ in test_codes) == round(0.25 * 12)
    assert {r.label for r in train} == {"positive", "negative"}


def test_the_split_is_seeded():
    rows = make_rows()
    assert split_by_codepoint(rows, 0.3, seed=7) == split_by_codepoint(rows, 0.3, seed=7)
    tests_by_seed = {
        frozenset(r.codepoint for r in split_by_codepoint(rows, 0.3, seed)[1]) for seed in range(5)
    }
    assert len(tests_by_seed) > 1


def test_tiny_labels_still_put_one_emoji_on_each_side():
    rows = [row("1f600", s, "positive") for s in STYLES] + [
        row("1f622", "noto", "negative"),
        row("1f62d", "noto", "negative"),
    ]
    train, test = split_by_codepoint(rows, 0.1, seed=0)
    assert {r.label for r in test} == {"negative"}  # one positive emoji cannot be split
    assert {r.codepoint for r in train if r.label == "negative"} != set()
    assert len({r.codepoint for r in test}) == 1


def test_imported_images_are_each_their_own_group():
    rows = make_rows(4, 4) + [row("", f"img{i}", "positive", how="import") for i in range(6)]
    _train, test = split_by_codepoint(rows, 0.5, seed=3)
    imported_test = [r for r in test if r.how_labelled == "import"]
    assert 0 < len(imported_test) < 6  # shuffled among the emojis, not kept together


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fractions_outside_the_open_interval_are_refused(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_codepoint(make_rows(), fraction)


def test_manifest_round_trips_and_rejects_foreign_csv(tmp_path):
    rows = make_rows(2, 2)
    write_manifest(rows, tmp_path / "manifest.csv")
    header = (tmp_path / "manifest.csv").read_text().splitlines()[0]
    assert header.split(",") == list(COLUMNS)
    assert read_manifest(tmp_path) == sorted(rows, key=lambda r: r.file)

    (tmp_path / "other.csv").write_text("file,label\na.png,positive\n")
    with pytest.raises(MoodmojiError, match="not an emoji set manifest"):
        read_manifest(tmp_path / "other.csv")
    with pytest.raises(MoodmojiError, match="dataset build"):
        read_manifest(tmp_path / "nowhere")
