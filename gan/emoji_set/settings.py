"""Emoji data set settings, read from MOODMOJI_EMOJI_SET_* variables and `.env`.

Fields carry an `emoji_set_` prefix because every package shares the one
`MOODMOJI_` namespace. Folders left empty follow `CommonSettings`:
`<data_dir>/emoji` for the set and `<cache_dir>/emoji-art` for the downloads.
"""

from pathlib import Path

from pydantic import Field

from moodmoji.settings import CommonSettings


class EmojiSetSettings(CommonSettings):
    emoji_set_dir: Path | None = Field(
        None, description="where `dataset build` writes the set; empty means <data_dir>/emoji"
    )
    emoji_set_cache_dir: Path | None = Field(
        None, description="downloaded art packages; empty means <cache_dir>/emoji-art"
    )
    emoji_set_balance: str = Field(
        "max",
        description="images drawn per label by `dataset build`: max (as many as the smaller "
        "label has), none (keep all), or a number",
    )
    emoji_set_seed: int = Field(0, description="seed of the balancing draw and the contact sheet")
    emoji_set_npm: str = Field("npm", description="npm executable that fetches the art packages")
    emoji_set_fetch_timeout_s: int = Field(
        120, description="seconds one `npm pack` may take before the build gives up"
    )
    emoji_set_import_min_side: int = Field(
        32, description="`dataset import` rejects images whose shorter side is below this"
    )
    emoji_set_import_max_side: int = Field(
        4096, description="`dataset import` rejects images whose longer side is above this"
    )

    def set_dir(self) -> Path:
        return self.emoji_set_dir or self.data_dir / "emoji"

    def art_cache_dir(self) -> Path:
        return self.emoji_set_cache_dir or self.cache_dir / "emoji-art"
