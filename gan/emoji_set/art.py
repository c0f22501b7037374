"""Art sources: the two package layouts the pinned styles come in, behind one interface.

- `iconify`: an Iconify JSON icon set (`iconify.IconSet`), SVG bodies rasterised by resvg.
- `images`: a folder of raster images named by code point (`1f600.webp`), such as
  the 3D Fluent Emoji renders; the file name is the code point map.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from gan.emoji_set.iconify import MATCH_FILE_NAME, IconMatch, load_icon_set
from gan.emoji_set.images import to_rgba_square
from gan.emoji_set.unicode_data import Emoji, hex_key

RASTER_SUFFIXES = (".png", ".webp")


class ArtSet(Protocol):
    @property
    def licence(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def url(self) -> str: ...
    def match(self, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]) -> dict[str, IconMatch]:
        """codepoint -> the icon drawn for it, for the wanted emojis this set has."""
        ...

    def render(self, icon: str, size: int) -> Image.Image:
        """The icon as a `size` x `size` RGBA image, its transparency kept."""
        ...


@dataclass(frozen=True)
class ImageFolderSet:
    folder: Path
    files: dict[str, str]  # codepoint_key -> file name in `folder`
    package: dict  # package.json

    @property
    def licence(self) -> str:
        return str(self.package.get("license", "unknown"))

    @property
    def author(self) -> str:
        author = self.package.get("author", "unknown")
        return author.get("name", "unknown") if isinstance(author, dict) else str(author)

    @property
    def url(self) -> str:
        return str(self.package.get("homepage", ""))

    def match(self, wanted: Iterable[Emoji], catalogue: Iterable[Emoji]) -> dict[str, IconMatch]:
        return {
            emoji.codepoint: IconMatch(emoji, self.files[emoji.codepoint], MATCH_FILE_NAME)
            for emoji in wanted
            if emoji.codepoint in self.files
        }

    def render(self, icon: str, size: int) -> Image.Image:
        with Image.open(self.folder / icon) as image:
            return to_rgba_square(image, size)


def load_image_folder_set(root: Path, images_dir: str) -> ImageFolderSet:
    folder = root / images_dir
    files = {
        hex_key(path.stem): path.name
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in RASTER_SUFFIXES
    }
    return ImageFolderSet(folder, files, json.loads((root / "package.json").read_text()))


def open_art_set(kind: str, root: Path, images_dir: str | None = None) -> ArtSet:
    if kind == "iconify":
        return load_icon_set(root)
    if kind == "images" and images_dir:
        return load_image_folder_set(root, images_dir)
    raise ValueError(f"unknown art package kind {kind!r}")
