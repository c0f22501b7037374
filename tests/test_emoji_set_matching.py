"""Finding each emoji's icon in an Iconify set (code point map or standard name), and rendering."""

import json
from pathlib import Path

import numpy as np
import pytest

from gan.emoji_set.iconify import (
    load_icon_set,
    match_by_name,
    match_icons,
    name_match_agreement,
    render_icon,
    slug,
)
from gan.emoji_set.unicode_data import Emoji

GRINNING = Emoji("1f600", "😀", "grinning face", "smileys-emotion", "face-smiling")
BEAMING = Emoji("1f601", "😁", "beaming face with smiling eyes", "smileys-emotion", "face-smiling")
GRIN_SMILING_EYES = Emoji(
    "1f604", "😄", "grinning face with smiling eyes", "smileys-emotion", "face-smiling"
)
ENRAGED = Emoji("1f621", "😡", "enraged face", "smileys-emotion", "face-negative")
RELIEVED = Emoji("1f60c", "😌", "relieved face", "smileys-emotion", "face-sleepy")
CRYING = Emoji("1f622", "😢", "crying face", "smileys-emotion", "face-concerned")
CATALOGUE = [GRINNING, BEAMING, GRIN_SMILING_EYES, ENRAGED, RELIEVED, CRYING]

CIRCLE = '<circle cx="8" cy="8" r="6" fill="#f5c400"/>'


def write_icon_set(root: Path, icons: dict, aliases=None, chars=None) -> Path:
    root.mkdir(parents=True)
    body = {"prefix": root.name, "width": 16, "height": 16, "icons": icons}
    if aliases:
        body["aliases"] = aliases
    (root / "icons.json").write_text(json.dumps(body))
    (root / "info.json").write_text(
        json.dumps({"author": {"name": "Test Artist"}, "license": {"spdx": "CC-BY-4.0"}})
    )
    if chars is not None:
        (root / "chars.json").write_text(json.dumps(chars))
    return root


def icons(*names: str) -> dict:
    return {name: {"body": CIRCLE} for name in names}


def test_slug_turns_standard_names_into_icon_names():
    assert slug("Face with head-bandage") == "face-with-head-bandage"
    assert slug("SMILING FACE WITH HEART-SHAPED EYES") == "smiling-face-with-heart-shaped-eyes"
    assert slug("piñata") == "pinata"
    assert slug("man’s shoe") == "mans-shoe"


def test_cldr_names_match_first_and_unicode_names_fill_in(tmp_path):
    # Older sets name U+1F621 by its Unicode name, POUTING FACE.
    icon_set = load_icon_set(
        write_icon_set(tmp_path / "set", icons("grinning-face", "pouting-face"))
    )
    found = match_by_name(icon_set, [GRINNING, ENRAGED, CRYING], CATALOGUE)
    assert {code: (m.icon, m.how) for code, m in found.items()} == {
        "1f600": ("grinning-face", "cldr-name"),
        "1f621": ("pouting-face", "unicode-name"),
    }


def test_a_unicode_name_that_is_another_emojis_cldr_name_is_refused(tmp_path):
    # U+1F601 is GRINNING FACE WITH SMILING EYES in Unicode, which is U+1F604's CLDR name.
    icon_set = load_icon_set(
        write_icon_set(tmp_path / "set", icons("grinning-face-with-smiling-eyes"))
    )
    found = match_by_name(icon_set, [BEAMING, GRIN_SMILING_EYES], CATALOGUE)
    assert {code: m.icon for code, m in found.items()} == {
        "1f604": "grinning-face-with-smiling-eyes"
    }
    # Even when U+1F604 is not wanted, the icon is not handed to U+1F601.
    assert match_by_name(icon_set, [BEAMING], CATALOGUE) == {}


def test_an_icon_claimed_by_two_emojis_goes_to_neither(tmp_path):
    twins = [
        Emoji("1f910", "🤐", "sad face", "smileys-emotion", "face-concerned"),
        Emoji("1f911", "🤑", "sad face", "smileys-emotion", "face-concerned"),
    ]
    icon_set = load_icon_set(write_icon_set(tmp_path / "set", icons("sad-face")))
    assert match_by_name(icon_set, twins, twins) == {}


def test_numbered_variants_and_aliases_resolve(tmp_path):
    icon_set = load_icon_set(
        write_icon_set(
            tmp_path / "set",
            icons("relieved-face-1", "relieved-face-2", "smile"),
            aliases={
                "grinning-face": {"parent": "smile"},
                "crying-face": {"parent": "smile", "hFlip": True},  # a mirrored drawing: refused
            },
        )
    )
    found = match_by_name(icon_set, [GRINNING, RELIEVED, CRYING], CATALOGUE)
    assert {code: (m.icon, m.how) for code, m in found.items()} == {
        "1f600": ("grinning-face", "cldr-name"),
        "1f60c": ("relieved-face-1", "cldr-name-variant"),
    }


def test_a_code_point_map_overrides_names_and_is_checked_against_them(tmp_path):
    icon_set = load_icon_set(
        write_icon_set(
            tmp_path / "set",
            {**icons("grinning-face", "crying-face"), "weeping": {"body": "<path d='M0 0h4'/>"}},
            # The map places U+1F622 on "weeping", which the name matcher would not.
            chars={"1f600": "grinning-face", "1f622-fe0f": "weeping", "1f621": "no-such-icon"},
        )
    )
    found = match_icons(icon_set, [GRINNING, CRYING, ENRAGED], CATALOGUE)
    assert {code: (m.icon, m.how) for code, m in found.items()} == {
        "1f600": ("grinning-face", "chars.json"),
        "1f622": ("weeping", "chars.json"),
    }
    check = name_match_agreement(icon_set, [GRINNING, CRYING, ENRAGED], CATALOGUE)
    assert (check.compared, check.agreed, check.only_by_chars) == (2, 1, 0)
    assert check.disagreements == (("1f622", "weeping", "crying-face"),)


def test_rendered_icons_are_64px_rgba_with_the_svg_transparency(tmp_path):
    icon_set = load_icon_set(write_icon_set(tmp_path / "set", icons("grinning-face")))
    image = render_icon(icon_set, "grinning-face", 64)
    assert image.mode == "RGBA" and image.size == (64, 64)
    pixels = np.asarray(image)
    assert pixels[0, 0, 3] == 0  # the corner stays transparent
    assert tuple(pixels[32, 32]) == (0xF5, 0xC4, 0x00, 255)  # the circle's fill, opaque
    with pytest.raises(KeyError):
        render_icon(icon_set, "missing", 64)
