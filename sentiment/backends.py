"""Backends turn cleaned texts into class probabilities; the classifier does the rest.

`minilm` (default, offline once nade's emoji model is cached): the packaged
MiniLM encoder, VADER scores, the emoji probabilities and the committed head.
`hf`: any Hugging Face sequence-classification model, by hub id or local
folder, with its labels mapped onto positive / negative / neutral.
"""

import logging
import re
from typing import Protocol

import torch

from moodmoji.device import resolve_device
from moodmoji.errors import MoodmojiError
from sentiment.emoji_model import EMOJIS, EmojiPredictor, fetch_emoji_model
from sentiment.encoder import (
    OnnxSentenceEncoder,
    SentenceEncoder,
    limit_cpu_threads,
    packaged_encoder_dir,
)
from sentiment.features import build_features, build_features_array
from sentiment.head import head_onnx, load_head
from sentiment.settings import SentimentSettings

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    classes: tuple[str, ...]  # the keys of every scores dict it returns
    default_neutral_threshold: float
    default_suggest_threshold: float | None  # None: any mood may be suggested
    device: torch.device

    def polarity_scores(self, cleaned_texts: list[str]) -> list[dict[str, float]]: ...


class MiniLMBackend:
    name = "minilm"
    classes = ("positive", "negative", "neutral")

    def __init__(self, settings: SentimentSettings):
        self.head, self.metadata = load_head(settings.sentiment_head_dir)
        self.device = resolve_device(settings.resolved_device)
        limit_cpu_threads(self.device, settings.sentiment_cpu_threads)
        folder = settings.sentiment_encoder_dir or packaged_encoder_dir()
        runtime = settings.sentiment_runtime
        if runtime == "auto":
            runtime = "onnx" if self.device.type == "cpu" else "torch"
        if runtime == "onnx" and self.device.type != "cpu":
            raise MoodmojiError(
                f"MOODMOJI_SENTIMENT_RUNTIME=onnx runs on the cpu only, not {self.device}; "
                "use runtime torch (or auto) there"
            )
        self.runtime = runtime
        if runtime == "onnx":
            self.encoder: SentenceEncoder = OnnxSentenceEncoder(
                folder,
                settings.sentiment_cache_dir,
                threads=settings.sentiment_cpu_threads,
                max_length=settings.sentiment_max_length,
                batch_size=settings.sentiment_batch_size,
            )
        else:
            self.encoder = SentenceEncoder(
                folder,
                self.device,
                max_length=settings.sentiment_max_length,
                batch_size=settings.sentiment_batch_size,
            )
        self.emojis = None
        if self.metadata.emoji_features:
            self.emojis = EmojiPredictor(fetch_emoji_model(settings.sentiment_cache_dir))
        emoji_columns = EMOJIS if self.emojis is not None else 0
        if self.encoder.dimension + 4 + emoji_columns != self.metadata.in_features:
            raise MoodmojiError(
                f"the head in {settings.sentiment_head_dir} expects {self.metadata.in_features} "
                f"features but encoder {self.encoder.folder} gives {self.encoder.dimension} + 4"
                + (f" + {emoji_columns} emoji" if emoji_columns else "")
            )
        self.head.to(self.device)
        self.head_session = None
        if runtime == "onnx":
            # The whole path stays in numpy and ONNX Runtime: no torch op runs per
            # message (torch's dispatch was a fifth of a one-message call).
            import onnxruntime

            from sentiment.encoder import session_options

            self.head_session = onnxruntime.InferenceSession(
                head_onnx(self.head),
                session_options(onnxruntime, settings.sentiment_cpu_threads),
                providers=["CPUExecutionProvider"],
            )
        self.default_neutral_threshold = self.metadata.neutral_threshold
        self.default_suggest_threshold = self.metadata.suggest_threshold
        # Load the VADER lexicon and let the runtimes pick their kernels now,
        # not on a user's first message.
        self.polarity_scores(["warming up"])

    def polarity_scores(self, cleaned_texts: list[str]) -> list[dict[str, float]]:
        if self.head_session is not None:
            features = build_features_array(self.encoder, cleaned_texts, self.emojis)
            probabilities = self.head_session.run(None, {"features": features})[0].tolist()
            return self._named(probabilities)
        with torch.inference_mode():
            features = build_features(self.encoder, cleaned_texts, self.emojis)
            return self.scores_from_features(features)

    @torch.inference_mode()
    def scores_from_features(self, features: torch.Tensor) -> list[dict[str, float]]:
        """The head's answer for features already built (evaluation reuses cached ones)."""
        return self._named(self.head(features.to(self.device)).cpu().tolist())

    def _named(self, probabilities: list[list[float]]) -> list[dict[str, float]]:
        order = self.metadata.labels
        return [dict(zip(order, row, strict=True)) for row in probabilities]


def guess_label_map(id2label: dict[int, str]) -> dict[str, str]:
    """Model label -> our class, from the names models usually give them."""
    names = [id2label[i] for i in sorted(id2label)]
    mapping = {}
    for name in names:
        lowered = name.lower()
        for ours in ("positive", "negative", "neutral"):
            if lowered.startswith(ours[:3]):
                mapping[name] = ours
    if len(mapping) == len(names):
        return mapping
    # Unnamed LABEL_i: the common conventions (SST-2 style, cardiffnlp style).
    if all(re.fullmatch(r"label_\d+", n.lower()) for n in names) and len(names) in (2, 3):
        ours = ("negative", "positive") if len(names) == 2 else ("negative", "neutral", "positive")
        return dict(zip(names, ours, strict=True))
    raise MoodmojiError(
        f"cannot tell which of the labels {names} is positive/negative/neutral; set "
        'MOODMOJI_SENTIMENT_LABEL_MAP, e.g. {"LABEL_0": "negative", "LABEL_1": "positive"}'
    )


class HFBackend:
    name = "hf"
    # A model with its own neutral class decides neutrality itself; the band
    # then only catches a barely-leading mood.
    default_neutral_threshold = 0.5
    default_suggest_threshold = None  # not calibrated: MOODMOJI_SENTIMENT_SUGGEST_THRESHOLD

    def __init__(self, settings: SentimentSettings):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = settings.sentiment_hf_model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(source)
        except (OSError, ValueError) as error:
            raise MoodmojiError(
                f"cannot load hf sentiment model {source!r} (no hub access and not on disk?): "
                f"{str(error).splitlines()[0]}"
            ) from error
        self.device = resolve_device(settings.resolved_device)
        limit_cpu_threads(self.device, settings.sentiment_cpu_threads)
        self.model = model.to(self.device).eval()
        self.max_length = settings.sentiment_max_length
        self.batch_size = settings.sentiment_batch_size
        id2label = {int(i): name for i, name in self.model.config.id2label.items()}
        label_map = settings.sentiment_label_map or guess_label_map(id2label)
        unknown = set(label_map.values()) - {"positive", "negative", "neutral"}
        if unknown or not {"positive", "negative"} <= set(label_map.values()):
            raise MoodmojiError(
                f"label map {label_map} must send model labels to positive and negative "
                "(and optionally neutral)"
            )
        self.class_of_index = [label_map.get(id2label[i]) for i in sorted(id2label)]
        self.classes = tuple(sorted({c for c in self.class_of_index if c}, key=_class_order))

    @torch.inference_mode()
    def polarity_scores(self, cleaned_texts: list[str]) -> list[dict[str, float]]:
        results = []
        for start in range(0, len(cleaned_texts), self.batch_size):
            batch = self.tokenizer(
                cleaned_texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            probabilities = self.model(**batch).logits.float().softmax(-1).cpu().tolist()
            for row in probabilities:
                scores = dict.fromkeys(self.classes, 0.0)
                for ours, p in zip(self.class_of_index, row, strict=True):
                    if ours:
                        scores[ours] += p
                total = sum(scores.values()) or 1.0  # renormalise over the mapped labels
                results.append({k: v / total for k, v in scores.items()})
        return results


def _class_order(name: str) -> int:
    return ("positive", "negative", "neutral").index(name)


BACKENDS = {"minilm": MiniLMBackend, "hf": HFBackend}


def load_backend(settings: SentimentSettings) -> Backend:
    return BACKENDS[settings.sentiment_backend](settings)
