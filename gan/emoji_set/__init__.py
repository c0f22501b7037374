"""The emoji data set builder: open-licensed face emojis labelled Positive or Negative.

`build_emoji_set` fetches pinned npm art packages, labels the Unicode mood faces
with the Emoji Sentiment Ranking (and Unicode sub-groups where it is silent),
rasterises them to 64x64 RGBA (transparency kept), balances the labels and writes
`positive/`, `negative/`, `manifest.csv` and `ATTRIBUTION.md`.
`split_by_codepoint` keeps every style of one emoji on the same side of a split.
See docs/dataset.md.
"""

from gan.emoji_set.build import BuildReport, build_emoji_set
from gan.emoji_set.importer import (
    ImportLimits,
    ImportRefused,
    ImportReport,
    UnsafeZipError,
    import_images,
)
from gan.emoji_set.labels import LABELS, NEGATIVE, POSITIVE, LabelRule, label_faces
from gan.emoji_set.manifest import ManifestRow, read_manifest, split_by_codepoint
from gan.emoji_set.packages import ART_STYLES, DEFAULT_STYLES, ArtStyle
from gan.emoji_set.settings import EmojiSetSettings
from gan.emoji_set.sheet import contact_sheet, count_table

__all__ = [
    "ART_STYLES",
    "DEFAULT_STYLES",
    "LABELS",
    "NEGATIVE",
    "POSITIVE",
    "ArtStyle",
    "BuildReport",
    "EmojiSetSettings",
    "ImportLimits",
    "ImportRefused",
    "ImportReport",
    "LabelRule",
    "ManifestRow",
    "UnsafeZipError",
    "build_emoji_set",
    "contact_sheet",
    "count_table",
    "import_images",
    "label_faces",
    "read_manifest",
    "split_by_codepoint",
]
