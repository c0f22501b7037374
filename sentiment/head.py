"""The small three-class head trained on top of the frozen encoder.

It is committed to the repository (sentiment/default_head/) as `head.safetensors`
(weights, ~100 KB) and `head.json` (shape, label order, neutral threshold, the
encoder it was trained against and how it was trained), so the default
classifier works right after install with nothing to download.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
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
    features: str = "minilm mean-pooled embedding + vader compound/pos/neg/neu [+ nade emojis]"
    training: dict = field(default_factory=dict)
    # Least confidence for an auto-suggestion, calibrated on validation tweets;
    # None (a head from before it) leaves the neutral threshold to decide.
    suggest_threshold: float | None = None
    # nade emoji probabilities after the embedding and VADER (0: none, a head from before).
    emoji_features: int = 0
    # Heads trained from different seeds whose probabilities are averaged (1: one head).
    members: int = 1


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


class HeadEnsemble(nn.Module):
    """Heads trained alike from different seeds; their probabilities averaged.

    One head's figures wander by 0.01 to 0.06 between seeds (docs/sentiment.md);
    the mean of five is steadier and scored higher on validation, for a few
    microseconds more a message.
    """

    def __init__(self, members: list[MoodHead]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(features) for member in self.members]).mean(0)


def save_head(head: MoodHead | HeadEnsemble, metadata: HeadMetadata, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in head.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2) + "\n")


def load_head(folder: Path) -> tuple["MoodHead | HeadEnsemble", HeadMetadata]:
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
    if metadata.members > 1:
        members = [MoodHead(metadata.in_features, metadata.hidden) for _ in range(metadata.members)]
        head: MoodHead | HeadEnsemble = HeadEnsemble(members)
    else:
        head = MoodHead(metadata.in_features, metadata.hidden)
    head.load_state_dict(load_file(str(weights)))
    return head.eval(), metadata


def head_onnx(head: MoodHead | HeadEnsemble) -> bytes:
    """`head` as a serialised ONNX graph, features (n, in) -> probabilities (n, 3) in LABELS order.

    Run by ONNX Runtime beside the encoder, the head costs about 20 us a message
    instead of the 60-150 us of torch's per-op dispatch for layers this small,
    and it is built here from the weights in memory (no export, nothing on disk).
    The ops are the module's own: standardise, Linear, exact (erf) GELU, Linear,
    softmax (and for an ensemble the mean of its members), so both give the
    same numbers to float rounding.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    members = list(head.members) if isinstance(head, HeadEnsemble) else [head]
    initializers = [
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(np.sqrt(2.0), dtype=np.float32), "sqrt2"),
    ]
    nodes, outputs = [], []
    for index, member in enumerate(members):
        member_nodes, member_weights, output = _member_graph(member, f"h{index}_")
        nodes += member_nodes
        initializers += member_weights
        outputs.append(output)
    if len(outputs) == 1:
        nodes.append(helper.make_node("Identity", outputs, ["probabilities"]))
    else:
        nodes.append(helper.make_node("Mean", outputs, ["probabilities"]))
    width = int(members[0].feature_mean.shape[0])
    graph = helper.make_graph(
        nodes,
        "mood_head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(LABELS)])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.x reads everywhere
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _member_graph(head: MoodHead, prefix: str) -> tuple[list, list, str]:
    """Nodes and weights of one head's softmax probabilities, names prefixed."""
    from onnx import helper, numpy_helper

    state = {name: t.detach().cpu().float().numpy() for name, t in head.state_dict().items()}
    linears = [name.removesuffix(".weight") for name in state if name.endswith(".weight")]
    weights = [
        numpy_helper.from_array(state["feature_mean"], f"{prefix}mean"),
        numpy_helper.from_array(state["feature_std"], f"{prefix}std"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", f"{prefix}mean"], [f"{prefix}centred"]),
        helper.make_node("Div", [f"{prefix}centred", f"{prefix}std"], [f"{prefix}x"]),
    ]
    current = f"{prefix}x"
    for number, name in enumerate(linears):
        w, b = f"{prefix}w{number}", f"{prefix}b{number}"
        weights += [
            numpy_helper.from_array(np.ascontiguousarray(state[f"{name}.weight"].T), w),
            numpy_helper.from_array(state[f"{name}.bias"], b),
        ]
        nodes += [
            helper.make_node("MatMul", [current, w], [f"{prefix}m{number}"]),
            helper.make_node("Add", [f"{prefix}m{number}", b], [f"{prefix}y{number}"]),
        ]
        current = f"{prefix}y{number}"
        if number < len(linears) - 1:  # GELU between layers: x * 0.5 * (1 + erf(x / sqrt 2))
            t = f"{prefix}{number}"
            nodes += [
                helper.make_node("Div", [current, "sqrt2"], [f"{t}s"]),
                helper.make_node("Erf", [f"{t}s"], [f"{t}e"]),
                helper.make_node("Add", [f"{t}e", "one"], [f"{t}p"]),
                helper.make_node("Mul", [current, "half"], [f"{t}h"]),
                helper.make_node("Mul", [f"{t}h", f"{t}p"], [f"{t}g"]),
            ]
            current = f"{t}g"
    nodes.append(helper.make_node("Softmax", [current], [f"{prefix}probabilities"], axis=-1))
    return nodes, weights, f"{prefix}probabilities"
