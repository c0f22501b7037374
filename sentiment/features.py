"""What the head sees: the sentence embedding with the VADER scores appended.

Training, evaluation and live classification all build features here, so the
three can never drift apart. Embeddings of the training corpus are cached on
disk, keyed by the encoder's fingerprint, the token limit and the texts.
"""

import hashlib
import logging
from pathlib import Path

import torch

from sentiment.encoder import SentenceEncoder
from sentiment.lexicon import vader_scores

log = logging.getLogger(__name__)


def build_features(encoder: SentenceEncoder, cleaned_texts: list[str]) -> torch.Tensor:
    """(n, encoder dimension + 4) float32 on the cpu."""
    return torch.cat([encoder.encode(cleaned_texts), vader_scores(cleaned_texts)], dim=1)


def cached_features(
    encoder: SentenceEncoder, cleaned_texts: list[str], cache_dir: Path
) -> torch.Tensor:
    """`build_features`, computed once per (encoder, max_length, texts) and kept on disk."""
    digest = hashlib.sha256(f"{encoder.fingerprint}:{encoder.max_length}".encode())
    for text in cleaned_texts:
        digest.update(text.encode("utf-8", errors="replace") + b"\0")
    path = cache_dir / f"features-{digest.hexdigest()[:20]}.pt"
    if path.exists():
        log.info("features from cache %s", path)
        return torch.load(path, weights_only=True)
    log.info("embedding %d sentences (cached afterwards in %s)", len(cleaned_texts), path)
    features = build_features(encoder, cleaned_texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(features, partial)
    partial.replace(path)
    return features
