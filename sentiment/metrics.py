"""Accuracy and macro-F1, small enough to read at a glance."""


def accuracy(truth: list[str], predicted: list[str]) -> float:
    if not truth:
        return float("nan")
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def macro_f1(truth: list[str], predicted: list[str], labels: tuple[str, ...]) -> float:
    """Unweighted mean of per-label F1 over `labels` (a label never seen nor said scores 0)."""
    if not truth:
        return float("nan")
    scores = []
    for label in labels:
        pairs = list(zip(truth, predicted, strict=True))
        hits = sum(t == label and p == label for t, p in pairs)
        said = sum(p == label for _, p in pairs)
        real = sum(t == label for t, _ in pairs)
        scores.append(2 * hits / (said + real) if said + real else 0.0)
    return sum(scores) / len(scores)
