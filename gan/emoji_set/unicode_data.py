"""The Unicode emoji catalogue: code points, CLDR names, groups and sub-groups.

Read from Emojibase's `en/data.json` and `meta/groups.json` (a pinned npm
package, see `packages.EMOJIBASE`), which carry Unicode's emoji-test.txt
ordering. Python's `emoji` package has names but no sub-groups.
"""

import json
from dataclasses import dataclass
from pathlib import Path

VARIATION_SELECTOR_16 = 0xFE0F


@dataclass(frozen=True)
class Emoji:
    codepoint: str  # codepoint_key(): "1f600", "1f636-200d-1f32b"
    char: str
    name: str  # CLDR short name: "grinning face"
    group: str  # "smileys-emotion"
    subgroup: str  # "face-smiling"


def codepoint_key(text: str) -> str:
    """Lower-case hex code points joined by '-', without emoji presentation selectors.

    Sources disagree on U+FE0F ("263a" or "263a-fe0f" for the smiling face),
    so every table in this package is keyed without it.
    """
    return "-".join(f"{ord(c):x}" for c in text if ord(c) != VARIATION_SELECTOR_16)


def hex_key(hexcode: str) -> str:
    """codepoint_key() of a hex sequence such as "1F636-200D-1F32B-FE0F" or "263a_fe0f"."""
    parts = hexcode.replace("_", "-").split("-")
    return codepoint_key("".join(chr(int(part, 16)) for part in parts if part))


def load_catalogue(emojibase_root: Path) -> list[Emoji]:
    """Every fully qualified emoji without skin tones, in Unicode order."""
    groups = json.loads((emojibase_root / "meta" / "groups.json").read_text())
    group_names, subgroup_names = groups["groups"], groups["subgroups"]
    catalogue = []
    for entry in json.loads((emojibase_root / "en" / "data.json").read_text()):
        if "group" not in entry or "subgroup" not in entry:
            continue  # regional indicators and components have no place in the order
        catalogue.append(
            Emoji(
                codepoint=hex_key(entry["hexcode"]),
                char=entry["emoji"],
                name=entry["label"],
                group=group_names[str(entry["group"])],
                subgroup=subgroup_names[str(entry["subgroup"])],
            )
        )
    return catalogue
