"""The small classification head trained on top of the frozen encoder.

It is committed to the repository (sentiment/default_head/) as `head.safetensors`
(weights, ~400 KB) and `head.json` (shape, label order, calibrated neutral
threshold, the encoder it was trained against and its test scores), so the
default classifier works right after install with nothing to download.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moodmoji.errors import MoodmojiError
from sentiment.data import DOMAIN_FILES
from sentiment.lexicon import FEATURES as LEXICON_FEATURES
from sentiment.lexicon import VADER_NEUTRAL_BAND

WEIGHTS_FILE = "head.safetensors"
METADATA_FILE = "head.json"
# Output order of the head's two logits.
LABELS = ("negative", "positive")
DOMAINS = tuple(DOMAIN_FILES)


@dataclass
class HeadMetadata:
    in_features: int
    hidden: int
    neutral_threshold: float
    encoder_fingerprint: str
    max_length: int
    labels: tuple[str, ...] = LABELS
    domains: tuple[str, ...] = DOMAINS
    features: str = "minilm mean-pooled embedding + vader compound/pos/neg/neu"
    training: dict = field(default_factory=dict)


class MoodHead(nn.Module):
    """A mixture of two experts: an MLP on embedding + lexicon scores, and the lexicon alone.

    VADER was tuned on tweets and is near-perfect on tweet-like text whenever it
    finds a sentiment word, but weak on reviews and editorials, where the
    embedding reads better. So a linear domain gate estimates how tweet-like a
    text is, and that share of the answer comes from VADER's compound score:
    p = g * sigmoid(scale * compound) + (1 - g) * mlp(features).
    When VADER finds no sentiment word (compound 0) its half says 50/50, which
    leaves the MLP's choice but pulls a mood-less tweet-like message (most
    chat) into the neutral band.
    """

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.embedding_size = in_features - len(LEXICON_FEATURES)
        # Embedding components are ~0.05 in size, VADER scores ~0.5: standardising
        # lets one weight decay treat both fairly. Filled in from the training set.
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        # How steeply VADER's compound maps to a probability; fitted on tweets.
        self.register_buffer("lexicon_scale", torch.tensor(1.0))
        mlp_inputs = in_features + 2  # + VADER's own positive / negative verdicts
        if hidden:
            self.mood = nn.Sequential(
                nn.Linear(mlp_inputs, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, len(LABELS)),
            )
        else:
            self.mood = nn.Sequential(nn.Linear(mlp_inputs, len(LABELS)))
        self.domain = nn.Linear(self.embedding_size, len(DOMAINS))

    def _standardised(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_std

    def mood_logits(self, features: torch.Tensor) -> torch.Tensor:
        compound = features[:, self.embedding_size]
        verdicts = torch.stack(
            [compound >= VADER_NEUTRAL_BAND, compound <= -VADER_NEUTRAL_BAND], dim=1
        ).to(features.dtype)
        return self.mood(torch.cat([self._standardised(features), verdicts], dim=1))

    def domain_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.domain(self._standardised(features)[:, : self.embedding_size])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Probabilities in LABELS order (negative, positive)."""
        compound = features[:, self.embedding_size]
        tweet_like = self.domain_logits(features).softmax(-1)[:, DOMAINS.index("tweets")]
        gate = tweet_like.unsqueeze(1)
        lexicon_positive = torch.sigmoid(self.lexicon_scale * compound).unsqueeze(1)
        lexicon = torch.cat([1 - lexicon_positive, lexicon_positive], dim=1)
        return gate * lexicon + (1 - gate) * self.mood_logits(features).softmax(-1)


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
    raw["labels"] = tuple(raw.get("labels", LABELS))
    raw["domains"] = tuple(raw.get("domains", DOMAINS))
    metadata = HeadMetadata(**raw)
    head = MoodHead(metadata.in_features, metadata.hidden)
    head.load_state_dict(load_file(str(weights)))
    return head.eval(), metadata
