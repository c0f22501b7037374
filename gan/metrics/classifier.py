"""A small Positive/Negative emoji classifier trained on the real images.

It stands in for ImageNet's Inception classifier, which the shipped TF-Inception
features lack and which knows nothing of emoji moods anyway. From its
predictions on generated images come:
- domain IS: exp(E_x KL(p(y|x) || p(y))), at most 2 with two labels. This is
  an Inception-*style* score on our labels, not the ImageNet Inception Score,
  and is not comparable with published IS values;
- class consistency: the share of a label's samples classified as that label.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan.data import LABELS, image_files, label_folder, load_label_images, random_flip


class EmojiClassifier(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1),
            nn.ReLU(True),  # (B, w, 32, 32)
            nn.Conv2d(width, width * 2, 3, 2, 1),
            nn.BatchNorm2d(width * 2),
            nn.ReLU(True),  # 16
            nn.Conv2d(width * 2, width * 4, 3, 2, 1),
            nn.BatchNorm2d(width * 4),
            nn.ReLU(True),  # 8
            nn.Conv2d(width * 4, width * 4, 3, 2, 1),
            nn.BatchNorm2d(width * 4),
            nn.ReLU(True),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(width * 4 * 16, 2))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))  # (B, 2) logits, in LABELS order


def data_key(images_by_label: dict[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for label in LABELS:
        digest.update(images_by_label[label].add(1).mul(127.5).round().byte().numpy().tobytes())
    return digest.hexdigest()[:16]


def holdout_masks(
    data_dir: Path | str, counts: dict[str, int], seed: int = 0, holdout: float = 0.2
) -> dict[str, Tensor]:
    """Which images of each label to hold out.

    With a data set manifest, every style of one emoji goes to the same side
    (so the held-out accuracy is not flattered by the same face in another
    style); otherwise a seeded random draw.
    """
    manifest = Path(data_dir) / "manifest.csv"
    if manifest.is_file():
        from gan.emoji_set import read_manifest, split_by_codepoint

        _, test_rows = split_by_codepoint(read_manifest(manifest), holdout, seed)
        test_files = {Path(row.file).name for row in test_rows}
        masks = {}
        for label in LABELS:
            names = [p.name for p in image_files(label_folder(data_dir, label))]
            masks[label] = torch.tensor([name in test_files for name in names])
        if all(0 < int(m.sum()) < len(m) for m in masks.values()):
            return masks
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for label in LABELS:
        mask = torch.zeros(counts[label], dtype=torch.bool)
        mask[
            torch.randperm(counts[label], generator=generator)[
                : max(1, int(counts[label] * holdout))
            ]
        ] = True
        masks[label] = mask
    return masks


def train_classifier(
    images_by_label: dict[str, Tensor],
    test_masks: dict[str, Tensor],
    steps: int = 400,
    seed: int = 0,
    evaluate: bool = True,
) -> tuple[EmojiClassifier, float]:
    """Train on the images outside `test_masks`; returns the model and its held-out accuracy.

    A fixed number of steps (not epochs) so that small sets get trained enough.
    """
    train_x, train_y, test_x, test_y = [], [], [], []
    for index, label in enumerate(LABELS):
        images, mask = images_by_label[label], test_masks[label]
        test_x.append(images[mask])
        train_x.append(images[~mask])
        test_y.append(torch.full((int(mask.sum()),), index))
        train_y.append(torch.full((int((~mask).sum()),), index))
    x, y = torch.cat(train_x), torch.cat(train_y)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = EmojiClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=generator)
        loss = F.cross_entropy(model(random_flip(x[idx])), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    if not evaluate:
        return model, float("nan")
    with torch.no_grad():
        predicted = model(torch.cat(test_x)).argmax(1)
    accuracy = (predicted == torch.cat(test_y)).float().mean().item()
    return model, accuracy


def load_or_train_classifier(
    data_dir: Path | str, cache_dir: Path | str
) -> tuple[EmojiClassifier, dict]:
    """The classifier for a data folder, trained once and cached by the folder's content."""
    images = {label: load_label_images(data_dir, label) for label in LABELS}
    key = data_key(images)
    path = Path(cache_dir) / "classifiers" / f"{key}.pt"
    model = EmojiClassifier()
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return model, saved["info"]
    masks = holdout_masks(data_dir, {label: len(images[label]) for label in LABELS})
    # One thread: CPU kernels sum in an order that depends on the thread count, and
    # a few hundred steps amplify that into a different judge (held-out accuracy
    # 0.69 on one thread, 0.77 on two, same data), so scores would drift between machines.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, accuracy = train_classifier(images, masks)
        # The held-out run measures how well the recipe generalises; the classifier
        # that scores generated emojis then learns from every real image.
        no_holdout = {label: torch.zeros_like(mask) for label, mask in masks.items()}
        model, _ = train_classifier(images, no_holdout, evaluate=False)
    finally:
        torch.set_num_threads(threads)
    info = {
        "data_key": key,
        "holdout_accuracy": accuracy,
        "holdout_images": sum(int(m.sum()) for m in masks.values()),
        "grouped_by_emoji": (Path(data_dir) / "manifest.csv").is_file(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "info": info}, path)
    return model, info


@torch.no_grad()
def predict_probs(model: EmojiClassifier, images: Tensor, batch_size: int = 256) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    chunks = [
        F.softmax(model(images[i : i + batch_size].to(device)), dim=1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks).double().numpy()


def domain_inception_score(probs: np.ndarray) -> float:
    marginal = probs.mean(0, keepdims=True)
    kl = (probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


def class_consistency(probs: np.ndarray, label: str) -> float:
    return float((probs.argmax(1) == LABELS.index(label)).mean())
