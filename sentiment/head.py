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


def head_onnx(head: MoodHead) -> bytes:
    """`head` as a serialised ONNX graph, features (n, in) -> probabilities (n, 3) in LABELS order.

    Run by ONNX Runtime beside the encoder, the head costs about 20 us a message
    instead of the 60-150 us of torch's per-op dispatch for layers this small,
    and it is built here from the weights in memory (no export, nothing on disk).
    The ops are the module's own: standardise, Linear, exact (erf) GELU, Linear,
    softmax, so both give the same numbers to float rounding.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    state = {name: t.detach().cpu().float().numpy() for name, t in head.state_dict().items()}
    linears = [name.removesuffix(".weight") for name in state if name.endswith(".weight")]
    initializers = [
        numpy_helper.from_array(state["feature_mean"], "mean"),
        numpy_helper.from_array(state["feature_std"], "std"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(np.sqrt(2.0), dtype=np.float32), "sqrt2"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["x0"]),
    ]
    current = "x0"
    for number, name in enumerate(linears):
        weight, bias = f"w{number}", f"b{number}"
        initializers += [
            numpy_helper.from_array(np.ascontiguousarray(state[f"{name}.weight"].T), weight),
            numpy_helper.from_array(state[f"{name}.bias"], bias),
        ]
        nodes += [
            helper.make_node("MatMul", [current, weight], [f"m{number}"]),
            helper.make_node("Add", [f"m{number}", bias], [f"y{number}"]),
        ]
        current = f"y{number}"
        if number < len(linears) - 1:  # GELU between layers: x * 0.5 * (1 + erf(x / sqrt 2))
            nodes += [
                helper.make_node("Div", [current, "sqrt2"], [f"s{number}"]),
                helper.make_node("Erf", [f"s{number}"], [f"e{number}"]),
                helper.make_node("Add", [f"e{number}", "one"], [f"p{number}"]),
                helper.make_node("Mul", [current, "half"], [f"h{number}"]),
                helper.make_node("Mul", [f"h{number}", f"p{number}"], [f"g{number}"]),
            ]
            current = f"g{number}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=-1))
    width = int(state["feature_mean"].shape[0])
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
