"""What the head sees: the sentence embedding with the VADER scores appended,
and for a head trained with them, nade's 151 emoji probabilities after those.

Training, evaluation and live classification all build features here, so the
three can never drift apart. Embeddings of the training corpus are cached on
disk, keyed by the encoder's fingerprint, the token limit and the texts (the
emoji probabilities take seconds for the whole corpus and are not cached).
"""

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from sentiment.emoji_model import EmojiPredictor
from sentiment.encoder import OnnxSentenceEncoder, SentenceEncoder
from sentiment.lexicon import vader_array, vader_scores

log = logging.getLogger(__name__)


def build_features(
    encoder: SentenceEncoder, cleaned_texts: list[str], emojis: EmojiPredictor | None = None
) -> torch.Tensor:
    """(n, encoder dimension + 4 [+ 151]) float32 on the cpu."""
    parts = [encoder.encode(cleaned_texts), vader_scores(cleaned_texts)]
    if emojis is not None:
        parts.append(torch.from_numpy(emojis.probabilities(cleaned_texts)))
    return torch.cat(parts, dim=1)


def build_features_array(
    encoder: OnnxSentenceEncoder, cleaned_texts: list[str], emojis: EmojiPredictor | None = None
) -> np.ndarray:
    """`build_features` without torch, for the ONNX Runtime path (the same numbers)."""
    parts = [encoder.embed(cleaned_texts), vader_array(cleaned_texts)]
    if emojis is not None:
        parts.append(emojis.probabilities(cleaned_texts))
    return np.concatenate(parts, axis=1)


def cached_features(
    encoder: SentenceEncoder, cleaned_texts: list[str], cache_dir: Path, chunk: int = 2048
) -> torch.Tensor:
    """`build_features`, computed once per (encoder, max_length, texts) and kept on disk.

    Embedding a corpus takes a long while on busy cores, so it runs in chunks
    that are each saved as they finish: an interrupted run resumes where it
    stopped.
    """
    digest = hashlib.sha256(f"{encoder.fingerprint}:{encoder.max_length}".encode())
    for text in cleaned_texts:
        digest.update(text.encode("utf-8", errors="replace") + b"\0")
    path = cache_dir / f"features-{digest.hexdigest()[:20]}.pt"
    if path.exists():
        log.info("features from cache %s", path)
        return torch.load(path, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for number, start in enumerate(range(0, len(cleaned_texts), chunk)):
        part = path.with_suffix(f".part{number}.pt")
        if not part.exists():
            log.info("embedding texts %d-%d of %d", start, start + chunk, len(cleaned_texts))
            _save(build_features(encoder, cleaned_texts[start : start + chunk]), part)
        parts.append(part)
    features = (
        torch.cat([torch.load(p, weights_only=True) for p in parts])
        if parts
        else (build_features(encoder, []))
    )
    _save(features, path)
    for part in parts:
        part.unlink()
    return features


def _save(tensor: torch.Tensor, path: Path) -> None:
    partial = path.with_suffix(".partial")
    torch.save(tensor, partial)
    partial.replace(path)
