"""The small three-class head trained on top of the frozen encoder.

It is committed to the repository (sentiment/default_head/) as `head.safetensors`
(weights, ~100 KB) and `head.json` (shape, label order, neutral threshold, the
encoder it was trained against and how it was trained), so the default
classifier works right after install with nothing to download.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moodmoji.errors import MoodmojiError

WEIGHTS_FILE = "head.safetensors"
METADATA_FILE = "head.json"
# Output order of the head's three logits. Neutral is a class learned from
# data (near-zero Hutto ratings, neutral-rated tweets), not a confidence band.
LABELS = ("negative", "neutral", "positive")


@dataclass
class HeadMetadata:
    in_features: int
    hidden: int
    neutral_threshold: float
    encoder_fingerprint: str
    max_length: int
    labels: tuple[str, ...] = LABELS
    features: str = "minilm mean-pooled embedding + vader compound/pos/neg/neu"
    training: dict = field(default_factory=dict)


class MoodHead(nn.Module):
    """An MLP on the standardised embedding + VADER scores, three logits out.

    There is no domain gate: the head decides for itself how far to trust the
    lexicon columns, which it learns from tweets, reviews and editorials alike.
    """

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        # Embedding components are ~0.05 in size, VADER scores ~0.5: standardising
        # lets one weight decay treat both fairly. Filled in from the training set.
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        if hidden:
            self.mood = nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, len(LABELS)),
            )
        else:
            self.mood = nn.Sequential(nn.Linear(in_features, len(LABELS)))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.mood((features - self.feature_mean) / self.feature_std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Probabilities in LABELS order."""
        return self.logits(features).softmax(-1)


def save_head(head: MoodHead, metadata: HeadMetadata, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in head.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2) + "\n")


def load_head(folder: Path) -> tuple[MoodHead, HeadMetadata]:
    weights, metadata_path = folder / WEIGHTS_FILE, folder / METADATA_FILE
    if not weights.exists() or not metadata_path.exists():
        raise MoodmojiError(
            f"no sentiment head in {folder} (needs {WEIGHTS_FILE} and {METADATA_FILE}); "
            "train one with `moodmoji sentiment train`"
        )
    raw = json.loads(metadata_path.read_text())
    raw["labels"] = tuple(raw.get("labels", ()))
    if raw["labels"] != LABELS or "domains" in raw:
        raise MoodmojiError(
            f"the head in {folder} is from an older moodmoji (labels {list(raw['labels'])}, "
            f"expected {list(LABELS)}); retrain it with `moodmoji sentiment train`"
        )
    metadata = HeadMetadata(**raw)
    head = MoodHead(metadata.in_features, metadata.hidden)
    head.load_state_dict(load_file(str(weights)))
    return head.eval(), metadata
