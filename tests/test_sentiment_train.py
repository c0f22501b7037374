"""Head training on small synthetic features, the head's file round trip, the feature cache."""

from dataclasses import dataclass

import pytest
import torch

from sentiment.encoder import SentenceEncoder, packaged_encoder_dir
from sentiment.features import cached_features
from sentiment.head import (
    LABELS,
    HeadEnsemble,
    HeadMetadata,
    MoodHead,
    head_onnx,
    load_head,
    save_head,
)
from sentiment.train import (
    HeadTraining,
    calibrate_neutral_threshold,
    calibrate_suggest_threshold,
    examples,
    fit,
    fit_head,
    head_probabilities,
)

EMBEDDING = 16


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tensors this small gain nothing from threads; on shared cores extra
    # threads only spin against each other (6x slower here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class Text:
    source: str
    domain: str
    polarity: str
    split: str


def _corpus(count: int, seed: int) -> tuple[list[Text], torch.Tensor]:
    """Features whose first component carries the mood (-1, 0, +1 plus noise); the topic
    "odd" has its mood in the second component instead, so only a head that saw it can read it."""
    generator = torch.Generator().manual_seed(seed)
    moods = torch.randint(0, 3, (count,), generator=generator)  # index in LABELS
    features = torch.randn(count, EMBEDDING + 4, generator=generator) * 0.3
    # Every other text is a tweet; half the tweets are about the topic "odd".
    topics = ["odd" if i % 4 == 1 else "plain" for i in range(count)]
    splits = ["train", "train", "train", "validation", "test"]
    texts = []
    for i in range(count):
        column = 1 if topics[i] == "odd" else 0
        features[i, column] += float(moods[i]) - 1.0
        source = "crowdflower" if i % 2 else "hutto"
        texts.append(Text(source, topics[i], LABELS[int(moods[i])], splits[i % 5]))
    return texts, features


def test_fit_head_learns_three_classes_and_round_trips(tmp_path):
    texts, features = _corpus(1500, seed=1)
    config = HeadTraining(hidden=8, epochs=15, batch_size=32, learning_rate=1e-2)
    train_set = examples(texts, features, "train")
    validation_set = examples(texts, features, "validation")
    head, score = fit_head(train_set, validation_set, config, seed=4)
    assert score > 0.8  # guessing scores 1/3
    probabilities = head_probabilities(head, validation_set.features)
    truth = [LABELS[i] for i in validation_set.labels.tolist()]
    threshold, three_way = calibrate_neutral_threshold(probabilities, truth)
    assert 1 / 3 <= threshold <= 0.9
    assert three_way >= score - 1e-9  # the band never makes the validation score worse

    metadata = HeadMetadata(EMBEDDING + 4, 8, threshold, "test", 32)
    save_head(head, metadata, tmp_path)
    loaded, loaded_metadata = load_head(tmp_path)
    assert loaded_metadata == metadata
    with torch.no_grad():
        assert torch.equal(loaded(validation_set.features), head(validation_set.features))


@pytest.mark.parametrize(("hidden", "members"), [(8, 1), (0, 1), (8, 3)])
def test_the_onnx_head_gives_the_torch_heads_probabilities(hidden, members):
    import onnxruntime

    texts, features = _corpus(600, seed=3)
    config = HeadTraining(
        hidden=hidden, epochs=3, batch_size=32, learning_rate=1e-2, members=members
    )
    head, _, _ = fit(texts, features, config, seed=4)
    assert isinstance(head, HeadEnsemble) == (members > 1)
    session = onnxruntime.InferenceSession(head_onnx(head), providers=["CPUExecutionProvider"])
    # Far from the training data too: GELU's tails and the softmax's saturation.
    probe = torch.cat([features, 5 * torch.randn(50, EMBEDDING + 4)])
    (fast,) = session.run(None, {"features": probe.numpy()})
    with torch.no_grad():
        reference = head(probe).numpy()
    assert fast.shape == (len(probe), len(LABELS))
    assert abs(fast - reference).max() < 1e-6
    assert (fast.argmax(1) == reference.argmax(1)).all()


def test_an_ensemble_averages_its_members_and_round_trips(tmp_path):
    texts, features = _corpus(900, seed=6)
    config = HeadTraining(hidden=8, epochs=4, batch_size=32, learning_rate=1e-2, members=3)
    ensemble, threshold, summary = fit(texts, features, config, seed=4)
    probe = features[:50]
    with torch.no_grad():
        alone = torch.stack([member(probe) for member in ensemble.members])
        assert not torch.allclose(alone[0], alone[1])  # different seeds, different heads
        assert torch.allclose(ensemble(probe), alone.mean(0))
    metadata = HeadMetadata(EMBEDDING + 4, 8, threshold, "test", 32, members=3)
    save_head(ensemble, metadata, tmp_path)
    loaded, loaded_metadata = load_head(tmp_path)
    assert isinstance(loaded, HeadEnsemble) and loaded_metadata.members == 3
    with torch.no_grad():
        assert torch.equal(loaded(probe), ensemble(probe))
    assert summary["validation_three_way_macro_f1"] > 0.6  # guessing scores 1/3


def test_an_untrained_onnx_head_is_not_the_trained_one():
    # The graph is built from the weights it is given, not from anything cached.
    features = torch.randn(20, EMBEDDING + 4)
    heads = [MoodHead(EMBEDDING + 4, 8) for _ in range(2)]
    import onnxruntime

    outputs = [
        onnxruntime.InferenceSession(head_onnx(h), providers=["CPUExecutionProvider"]).run(
            None, {"features": features.numpy()}
        )[0]
        for h in heads
    ]
    assert abs(outputs[0] - outputs[1]).max() > 1e-3


def test_the_suggest_threshold_is_the_least_that_keeps_false_alarms_under_the_target():
    def mood(p):
        return {"positive": p, "negative": 0.0, "neutral": 1.0 - p}

    # Ten neutral texts given a mood at 0.45..0.90, and one positive (ignored).
    probabilities = [mood(0.45 + 0.05 * k) for k in range(10)] + [mood(0.99)]
    truth = ["neutral"] * 10 + ["positive"]
    threshold, share = calibrate_suggest_threshold(probabilities, truth, 0.2, floor=0.4)
    # 0.80 lets three of ten through (0.80, 0.85, 0.90), 0.81 two: the target.
    assert share == pytest.approx(0.2) and threshold == pytest.approx(0.81)
    assert calibrate_suggest_threshold(probabilities, truth, 0.0, floor=0.4)[0] == 0.91
    assert calibrate_suggest_threshold(probabilities, truth, 1.0, floor=0.4)[0] == 0.4


def test_fit_calibrates_a_suggest_threshold_on_the_tweets_only():
    texts, features = _corpus(1500, seed=5)
    config = HeadTraining(hidden=8, epochs=5, batch_size=32, learning_rate=1e-2)
    _, threshold, summary = fit(texts, features, config, seed=4)
    assert threshold <= summary["suggest_threshold"] <= 0.99
    assert summary["validation_suggest_false_alarms"] <= config.suggest_false_alarms
    strict = HeadTraining(**{**vars(config), "suggest_false_alarms": 0.01})
    assert (
        fit(texts, features, strict, seed=4)[2]["suggest_threshold"] > summary["suggest_threshold"]
    )


def test_classes_weigh_the_same_within_each_source():
    texts = [Text("hutto", "d", "neutral", "train")] * 6 + [Text("hutto", "d", "positive", "train")]
    texts += [Text("crowdflower", "t", "negative", "train")] * 3
    batch = examples(texts, torch.zeros(len(texts), 4), "train")
    hutto, tweets = batch.weights[:7], batch.weights[7:]
    assert float(hutto[:6].sum()) == pytest.approx(float(hutto[6]))
    assert float(hutto.sum()) == pytest.approx(7 / 3 * 2)  # two of three classes present
    assert float(tweets.sum()) == pytest.approx(3 / 3)


def test_leaving_a_topic_out_of_training_costs_that_topic():
    texts, features = _corpus(1500, seed=2)
    config = HeadTraining(hidden=8, epochs=15, batch_size=32, learning_rate=1e-2)
    odd_test = [
        i
        for i, t in enumerate(texts)
        if t.split == "test" and t.domain == "odd" and t.source == "crowdflower"
    ]
    truth = [LABELS.index(texts[i].polarity) for i in odd_test]

    def accuracy_on_odd(leave_out):
        head, _, summary = fit(texts, features, config, seed=4, leave_out=leave_out)
        guessed = head(features[odd_test]).argmax(-1).tolist()
        return sum(g == t for g, t in zip(guessed, truth, strict=True)) / len(truth), summary

    seen, seen_summary = accuracy_on_odd(None)
    unseen, unseen_summary = accuracy_on_odd("odd")
    assert unseen_summary["train_texts"] < seen_summary["train_texts"]
    assert seen > unseen + 0.2


def test_features_are_cached_per_texts_and_resume_from_chunks(tmp_path, monkeypatch):
    import sentiment.features as module

    encoder = SentenceEncoder(packaged_encoder_dir(), torch.device("cpu"), 32, 8)
    texts = ["great stuff", "awful", "meeting at noon"]
    first = cached_features(encoder, texts, tmp_path, chunk=2)
    assert first.shape == (3, encoder.dimension + 4)
    assert len(list(tmp_path.glob("*.pt"))) == 1  # the chunks are folded into one file
    assert torch.equal(cached_features(encoder, texts, tmp_path), first)

    # A run that dies in its second chunk keeps the first; the rerun embeds only the rest.
    real, calls = module.build_features, []

    def dies_on_second_chunk(encoder, chunk):
        calls.append(list(chunk))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(encoder, chunk)

    more = [*texts, "one more"]
    monkeypatch.setattr(module, "build_features", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        cached_features(encoder, more, tmp_path / "run", chunk=2)
    monkeypatch.setattr(module, "build_features", lambda e, c: calls.append(list(c)) or real(e, c))
    resumed = cached_features(encoder, more, tmp_path / "run", chunk=2)
    assert calls == [more[:2], more[2:], more[2:]]
    assert torch.allclose(resumed[:3], first, atol=1e-5)
    assert len(list((tmp_path / "run").glob("*.pt"))) == 1
