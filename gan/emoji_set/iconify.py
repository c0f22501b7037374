"""Iconify JSON icon sets: find the icon drawn for an emoji, and rasterise it.

An Iconify package has `icons.json` (SVG bodies keyed by icon name, plus
aliases) and `info.json` (author, licence); some also have `chars.json`, a map
from code points to icon names. Where that map exists it decides. Elsewhere an
emoji is matched by its standard name: the CLDR short name first, then its
Unicode character name, then the first numbered variant of the CLDR name
("relieved-face-1", where a set draws two versions and numbers them). A
Unicode-name match is refused when that name is another emoji's CLDR name
(U+1F601 is named GRINNING FACE WITH SMILING EYES in Unicode, but that is
U+1F604's CLDR name), and an icon claimed by two emojis is given to neither.
`name_match_agreement` checks the name matcher against the code point maps of
the sets that have both.
"""

import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import resvg_py
from PIL import Image

from gan.emoji_set.images import to_rgba_square
from gan.emoji_set.unicode_data import Emoji, hex_key

MATCH_CHARS = "chars.json"
MATCH_CLDR = "cldr-name"
MATCH_UNICODE = "unicode-name"
MATCH_FILE_NAME = "file-name"
MATCH_VARIANT = "cldr-name-variant"


def slug(name: str) -> str:
    """Iconify's form of a standard name: 'Face with head-bandage' -> 'face-with-head-bandage'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = ascii_name.replace("'", "").replace("’", "")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


@dataclass(frozen=True)
class IconSet:
    root: Path
    prefix: str
    icons: dict[str, dict]
    aliases: dict[str, dict]
    chars: dict[str, str]  # codepoint_key -> icon name; empty where the package has no map
    info: dict
    default_width: float
    default_height: float

    @property
    def licence(self) -> str:
        return self.info.get("license", {}).get("spdx", "unknown")

    @property
    def author(self) -> str:
        return self.info.get("author", {}).get("name", "unknown")

    @property
    def url(self) -> str:
        return self.info.get("author", {}).get("url", "")

    def match(self, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]) -> dict[str, "IconMatch"]:
        return match_icons(self, wanted, catalogue)

    def render(self, icon: str, size: int) -> Image.Image:
        return render_icon(self, icon, size)

    def resolve(self, name: str) -> dict | None:
        """The icon's own fields merged over its alias chain; None if absent or transformed."""
        seen: set[str] = set()
        merged: dict = {}
        while name in self.aliases and name not in seen:
            seen.add(name)
            alias = self.aliases[name]
            # Aliases that flip or rotate their parent draw something else: not an emoji.
            if any(key in alias for key in ("rotate", "hFlip", "vFlip")):
                return None
            merged = {**{k: v for k, v in alias.items() if k != "parent"}, **merged}
            name = alias["parent"]
        if name not in self.icons:
            return None
        return {**self.icons[name], **merged}

    def has(self, name: str) -> bool:
        return self.resolve(name) is not None


def load_icon_set(root: Path) -> IconSet:
    icons_json = json.loads((root / "icons.json").read_text())
    chars_path = root / "chars.json"
    raw_chars = json.loads(chars_path.read_text()) if chars_path.is_file() else {}
    info_path = root / "info.json"
    return IconSet(
        root=root,
        prefix=icons_json.get("prefix", root.name),
        icons=icons_json["icons"],
        aliases=icons_json.get("aliases", {}),
        chars={hex_key(code): name for code, name in (raw_chars or {}).items()},
        info=json.loads(info_path.read_text()) if info_path.is_file() else {},
        default_width=icons_json.get("width", 16),
        default_height=icons_json.get("height", 16),
    )


@dataclass(frozen=True)
class IconMatch:
    emoji: Emoji
    icon: str
    how: str  # MATCH_CHARS, MATCH_CLDR or MATCH_UNICODE


def unicode_name(emoji: Emoji) -> str | None:
    """The Unicode character name of a single-code-point emoji, else None."""
    points = emoji.codepoint.split("-")
    return unicodedata.name(chr(int(points[0], 16)), None) if len(points) == 1 else None


def match_by_name(
    icon_set: IconSet, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]
) -> dict[str, IconMatch]:
    """Icons for `wanted` emojis found by standard name, each checked as described above."""
    cldr_owner = {slug(emoji.name): emoji.codepoint for emoji in catalogue}
    candidates: list[IconMatch] = []
    for emoji in wanted:
        cldr = slug(emoji.name)
        if icon_set.has(cldr):
            candidates.append(IconMatch(emoji, cldr, MATCH_CLDR))
            continue
        name = unicode_name(emoji)
        fallback = slug(name) if name else None
        unclaimed = fallback and cldr_owner.get(fallback, emoji.codepoint) == emoji.codepoint
        if unclaimed and icon_set.has(fallback):
            candidates.append(IconMatch(emoji, fallback, MATCH_UNICODE))
        elif icon_set.has(f"{cldr}-1"):
            candidates.append(IconMatch(emoji, f"{cldr}-1", MATCH_VARIANT))
    claims = Counter(match.icon for match in candidates)
    return {m.emoji.codepoint: m for m in candidates if claims[m.icon] == 1}


def match_icons(
    icon_set: IconSet, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]
) -> dict[str, IconMatch]:
    """codepoint -> icon: by the set's code point map where it has one, else by name."""
    wanted = list(wanted)
    if not icon_set.chars:
        return match_by_name(icon_set, wanted, catalogue)
    return {
        emoji.codepoint: IconMatch(emoji, icon_set.chars[emoji.codepoint], MATCH_CHARS)
        for emoji in wanted
        if emoji.codepoint in icon_set.chars and icon_set.has(icon_set.chars[emoji.codepoint])
    }


@dataclass(frozen=True)
class NameMatchCheck:
    compared: int  # emojis that both the code point map and the name matcher place
    agreed: int
    only_by_chars: int  # the map places them, the name matcher finds nothing
    disagreements: tuple[tuple[str, str, str], ...]  # (codepoint, by chars, by name)


def name_match_agreement(
    icon_set: IconSet, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]
) -> NameMatchCheck | None:
    """The name matcher scored against the set's own code point map; None without a map."""
    if not icon_set.chars:
        return None
    wanted = list(wanted)
    by_chars = match_icons(icon_set, wanted, catalogue)
    by_name = match_by_name(icon_set, wanted, catalogue)
    both = [code for code in by_chars if code in by_name]
    # Two names for one drawing (an alias) are the same icon.
    disagreements = tuple(
        (code, by_chars[code].icon, by_name[code].icon)
        for code in both
        if icon_set.resolve(by_chars[code].icon) != icon_set.resolve(by_name[code].icon)
    )
    return NameMatchCheck(
        compared=len(both),
        agreed=len(both) - len(disagreements),
        only_by_chars=len(by_chars) - len(both),
        disagreements=disagreements,
    )


def icon_svg(icon_set: IconSet, name: str, size: int) -> str:
    icon = icon_set.resolve(name)
    if icon is None:
        raise KeyError(f"{icon_set.prefix}:{name}")
    left, top = icon.get("left", 0), icon.get("top", 0)
    width = icon.get("width", icon_set.default_width)
    height = icon.get("height", icon_set.default_height)
    view_box = quoteattr(f"{left} {top} {width} {height}")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{size}" height="{size}" viewBox={view_box}>{icon["body"]}</svg>'
    )


def render_icon(icon_set: IconSet, name: str, size: int) -> Image.Image:
    """The icon rasterised by resvg at `size` x `size`, RGBA with the SVG's transparency."""
    png = resvg_py.svg_to_bytes(svg_string=icon_svg(icon_set, name, size))
    with Image.open(io.BytesIO(bytes(png))) as image:
        return to_rgba_square(image, size)
