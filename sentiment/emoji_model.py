"""nade's emoji predictor: which of 151 emojis a social-media message would carry.

nade 0.3.1 (MIT, Christian Hotz-Behofsits) ships a fastText classifier,
`data/socialmedia_en/nade_250k_hp.ftz`, trained to predict the emoji people
put after their text. Its 151 probabilities read the mood of short informal
text the way people who write it do (slang, "lol", "ugh", "ffs"), and cost
about 0.03 ms a message; the head takes them as extra features.

Only the model file is used: installing nade would pull lightgbm and pyarrow
for its second stage, which we do not need. The wheel is fetched with pip as
a data source (a package registry, never a hub) into the cache folder, like
the training corpora, and the file inside is checked by SHA-256; place the
wheel in `MOODMOJI_CACHE_DIR/sentiment/downloads/` to work offline. The model
is read by `fasttext-numpy2`, the fastText bindings nade itself depends on.
"""

import logging
from pathlib import Path

import numpy as np
import regex

from moodmoji.errors import MoodmojiError
from sentiment.data import wheel_member

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "nade==0.3.1"
WHEEL_FILENAME = "nade-0.3.1-py3-none-any.whl"
MODEL_MEMBER = "nade/data/socialmedia_en/nade_250k_hp.ftz"
MODEL_SHA256 = "4174b3094b7069ab57fcb635dc3a9b4fe7eb18e55db2000e73a2e5ccae75f578"
EMOJIS = 151  # the model's labels; a head trained on these features expects this many

# nade's own preprocessing (Nade.preprocess): punctuation runs set apart by
# spaces, whitespace collapsed, lower case. The model was trained on text so
# written, so it reads ours the same way.
_PUNCTUATION = regex.compile(r"\s*([\p{P}]+)\s*")
_WHITESPACE = regex.compile(r"\s+")


def fetch_emoji_model(cache_dir: Path) -> Path:
    """The .ftz file, extracted once from the nade wheel (downloaded with pip)."""
    return wheel_member(
        WHEEL_REQUIREMENT,
        WHEEL_FILENAME,
        MODEL_MEMBER,
        MODEL_SHA256,
        cache_dir,
        cache_dir / "nade_250k_hp.ftz",
    )


def nade_text(text: str) -> str:
    return _WHITESPACE.sub(" ", _PUNCTUATION.sub(r" \1 ", text)).lower().strip()


class EmojiPredictor:
    """Cleaned texts -> (n, 151) float32 emoji probabilities, columns in label-id order."""

    def __init__(self, path: Path):
        try:
            import fasttext
        except ImportError as error:
            raise MoodmojiError(
                "the sentiment head's emoji features need fastText; "
                "pip install fasttext-numpy2==0.10.4"
            ) from error
        # fastText prints a deprecation notice on every load; it says nothing here.
        fasttext.FastText.eprint = lambda *args: None
        self.model = fasttext.load_model(str(path))
        labels = sorted(self.model.get_labels(), key=lambda name: int(name.rsplit("_", 1)[1]))
        if len(labels) != EMOJIS:
            raise MoodmojiError(f"{path} has {len(labels)} labels, expected {EMOJIS}")
        self.column = {name: i for i, name in enumerate(labels)}

    def probabilities(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), EMOJIS), dtype=np.float32)
        if not texts:
            return out
        # fastText reads one line per text: a newline would end it early.
        labels, probabilities = self.model.predict(
            [nade_text(t).replace("\n", " ") for t in texts], k=EMOJIS
        )
        for row, (names, values) in enumerate(zip(labels, probabilities, strict=True)):
            out[row, [self.column[name] for name in names]] = values
        return out
