"""Sampling emojis from a checkpoint, deterministic per seed, batched across requests."""

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.checkpoint import (
    CheckpointError,
    checkpoint_config,
    file_version,
    generator_weights,
    load_checkpoint,
)
from gan.config import TrainConfig
from gan.data import tensor_to_images
from gan.gate import ShapeGate
from gan.inference import fold_batch_norms, prepack_cpu_convs, upsample_convs_on_small_maps
from gan.models import Generator, build_generator, cat_latents
from gan.png import encode_png
from moodmoji.device import resolve_device
from moodmoji.errors import MoodmojiError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively: AMX tiles (Intel Sapphire Rapids on) or
    AVX512-BF16 (also AMD Zen 4 on)."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype the generator's forward runs in (`MOODMOJI_WORKER_PRECISION`).

    `auto`: bf16 where the hardware has it natively (a CUDA GPU that supports it; a CPU
    with AMX tiles or AVX512-BF16, where oneDNN runs bf16 convolutions 2.2-2.5x and
    1.3-1.6x faster than fp32 on the FastGAN body, docs/benchmarks.md), else fp32. Reduced
    precision runs under autocast: convolutions (with the batch norms folded into them)
    in it, the output in fp32, so pixels stay within 1/255 of fp32 on average
    (tests/test_worker_speed.py).
    """
    if name not in PRECISIONS:
        raise MoodmojiError(f"unknown precision {name!r} (use {', '.join(PRECISIONS)})")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_has_bf16():
            name = "bf16"
        else:
            name = "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _bucket(n: int) -> int:
    """The compiled batch size that holds `n`: a power of two, so a handful of graphs
    serve every batch size instead of one compilation per size."""
    return 1 << max(0, n - 1).bit_length()


class SampleJob:
    """One request's draw: its seeded latent stream, and what the gate kept and rejected."""

    def __init__(self, seed: int, count: int):
        self.seed, self.count = seed, count
        self.stream = torch.Generator().manual_seed(seed)
        self.kept: list[torch.Tensor] = []
        self.rejected: list[torch.Tensor] = []
        self.passes = 0

    @property
    def missing(self) -> int:
        return self.count - len(self.kept)

    def images(self) -> torch.Tensor:
        """(count, C, 64, 64): the kept samples, filled up with the first rejects."""
        return torch.stack((self.kept + self.rejected)[: self.count])


class EmojiSampler:
    """A loaded generator, kept in eval mode on its device.

    Each request is a (seed, count) pair; its latents come from its own seeded
    CPU generator, so a request gives the same emojis alone or in any batch,
    on any device.
    """

    # A request whose samples the shape gate rejects draws again from its own stream,
    # at most this many forward passes in all; then it takes its first rejects.
    GATE_ROUNDS = 3

    def __init__(
        self,
        generator: Generator,
        config: TrainConfig,
        version: str,
        device: torch.device,
        gate: ShapeGate | None = None,
        precision: torch.dtype = torch.float32,
        compile: bool = False,
    ):
        # channels_last: the CPU convolution kernels run 1.6x faster on the FastGAN body in it
        # (batch 64, one thread), and no slower on the DCGAN one; cuDNN prefers it too.
        generator = upsample_convs_on_small_maps(fold_batch_norms(generator.eval()))
        self.generator = generator.to(device, memory_format=torch.channels_last).requires_grad_(
            False
        )
        self.config = config
        self.version = version
        self.device = device
        self.gate = gate
        self.precision = precision
        if precision != torch.float32:
            # Convolution weights (batch norms folded in) in the reduced precision once, not
            # cast by autocast at every forward (0.5 ms of a lone request's 3.5).
            for module in self.generator.modules():
                if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                    module.to(precision)
        if device.type == "cpu" and not compile:
            self.generator = prepack_cpu_convs(self.generator)
        self._forward = self.generator
        self._compiled = compile
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        if compile:
            # CUDA graphs on a GPU ("reduce-overhead"); batches are padded to `_bucket` sizes.
            # On this CPU compiling bought nothing (docs/benchmarks.md), so it is opt-in.
            mode = "reduce-overhead" if device.type == "cuda" else None
            self._forward = torch.compile(self.generator, mode=mode, dynamic=False)

    @property
    def label(self) -> str:
        return self.config.label

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        device: str = "auto",
        gate: bool = True,
        precision: str = "fp32",
        compile: bool = False,
    ) -> "EmojiSampler":
        """`gate`: apply the shape gate the file carries (RGBA generators exported with one).
        `precision`: see `resolve_precision`; `compile`: `torch.compile` the generator."""
        payload = load_checkpoint(path)
        config = checkpoint_config(payload)
        generator = build_generator(config)
        weights = {
            k: v.float() if v.is_floating_point() else v
            for k, v in generator_weights(payload).items()
        }
        generator.load_state_dict(weights)
        shape_gate = ShapeGate(**payload["gate"]) if gate and payload.get("gate") else None
        where = resolve_device(device)
        dtype = resolve_precision(precision, where)
        return cls(generator, config, file_version(path), where, shape_gate, dtype, compile)

    @torch.inference_mode()
    def draw(self, latent, to_host: bool = True) -> torch.Tensor:
        """(B, C, 64, 64) fp32 images for a latent, in this sampler's precision; on the
        CPU (`to_host`) or left on the device, unsynchronised, for timing the forward."""
        n = len(latent)
        if self._compiled:
            pad = _bucket(n) - n
            if pad:
                latent = cat_latents(
                    [latent, self.generator.sample_latent(pad).to(latent.z.device)]
                )
        if self.device.type == "cuda" and latent.z.device.type == "cpu":
            # Pinned host memory makes both copies asynchronous DMA transfers.
            latent = latent.pin_memory()
        latent = latent.to(self.device, non_blocking=True)
        autocast = self.precision != torch.float32
        if self._compiled and self.device.type == "cuda":
            # A new step for CUDA graphs: the last call's outputs were copied out already.
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(self.device.type, dtype=self.precision, enabled=autocast):
            images = self._forward(latent)[:n].float()
        if not to_host or self.device.type != "cuda":
            return images
        host = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
        host.copy_(images, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host

    def job(self, seed: int, count: int) -> "SampleJob":
        """A request's draw, to be advanced by `step` until `finished`."""
        return SampleJob(seed, count)

    def finished(self, job: "SampleJob") -> bool:
        """Whether `job` has its samples: `count` that passed the gate, or its passes used up
        (`GATE_ROUNDS`; it then fills up with its first rejects)."""
        return job.missing <= 0 or job.passes >= (self.GATE_ROUNDS if self.gate else 1)

    @torch.inference_mode()
    def step(self, jobs: Sequence["SampleJob"]) -> None:
        """One forward pass for the missing samples of every unfinished job in `jobs`.

        Each job's latents come from its own seeded stream in order, so what it gets
        does not depend on the jobs stepped with it, nor on how many passes of others
        it shared. A caller with a stream of requests puts an unfinished job into its
        next batch's pass, where a redraw costs a sample, not a small pass of its own.
        """
        jobs = [job for job in jobs if not self.finished(job)]
        if not jobs:
            return
        latents = [self.generator.sample_latent(job.missing, job.stream) for job in jobs]
        images = self.draw(cat_latents(latents))
        # One gate call for the whole forward pass, not one per request in it.
        passed = self.gate.passes(images).tolist() if self.gate else [True] * len(images)
        start = 0
        for job in jobs:
            n = job.missing
            for image, ok in zip(images[start : start + n], passed[start : start + n], strict=True):
                (job.kept if ok else job.rejected).append(image)
            job.passes += 1
            start += n

    def sample_tensor(self, requests: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """One (count, C, 64, 64) tensor in [-1, 1] per (seed, count) request.

        One forward for all requests; with a shape gate, the requests that lost
        samples to it draw their next latents in another (at most `GATE_ROUNDS`), the
        same emojis alone or in any batch. (Drawing spares up front to save the later
        passes costs more: a pass grows with its batch, and the later ones are small.)
        """
        jobs = [self.job(seed, count) for seed, count in requests]
        while pending := [job for job in jobs if not self.finished(job)]:
            self.step(pending)
        return [job.images() for job in jobs]

    def sample_batch(
        self, requests: Sequence[tuple[int, int]], size: int = 64
    ) -> list[list[Image.Image]]:
        """PIL images per (seed, count) request, `size` x `size` (64 native, larger upscaled)."""
        return [tensor_to_images(t, size) for t in self.sample_tensor(requests)]


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes, fast: RGB and RGBA through `gan.png` (one row filter, ISA-L's deflate;
    7x faster than Pillow's for 19% more bytes), other modes through Pillow.
    `compress_level`: 0-3, ISA-L's levels (zlib's, for Pillow)."""
    if image.mode in ("RGB", "RGBA"):
        return encode_png(np.asarray(image), compress_level)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_emojis(images: torch.Tensor, size: int, compress_level: int = 1) -> list[bytes]:
    """(N, C, 64, 64) images in [-1, 1] to N PNGs of `size` px: the one place a sample
    becomes what is served. Pillow's Lanczos resize and `gan.png`'s numpy and ISA-L work
    release the GIL, so a pool of threads runs this on every core (the resize: 0.27 ms an
    emoji against 0.94 for a bicubic resize of the whole batch in torch, measured here)."""
    return [png_bytes(image, compress_level) for image in tensor_to_images(images, size)]


def resolve_checkpoint(checkpoint: Path | str, label: str | None) -> Path:
    """A checkpoint file, or a run/models folder holding one for `label`."""
    path = Path(checkpoint)
    if path.is_dir():
        candidates = (
            [path / f"{label}.pt", path / "best.pt", path / "checkpoint.pt"]
            if label
            else [path / "best.pt", path / "checkpoint.pt"]
        )
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"no checkpoint for label {label!r} in {path}")
    return path


def sample_emojis(
    checkpoint: Path | str | EmojiSampler,
    label: str | None = None,
    n: int = 1,
    seed: int = 0,
    size: int = 64,
    as_png: bool = False,
    device: str = "auto",
    gate: bool = True,
) -> list[Image.Image] | list[bytes]:
    """`n` emojis of `label` from a checkpoint (file or folder) or a loaded sampler."""
    if isinstance(checkpoint, EmojiSampler):
        sampler = checkpoint
    else:
        sampler = EmojiSampler.from_checkpoint(resolve_checkpoint(checkpoint, label), device, gate)
    if label is not None and sampler.label != label:
        raise CheckpointError(f"that checkpoint draws {sampler.label} emojis, not {label}")
    images = sampler.sample_batch([(seed, n)], size)[0]
    return [png_bytes(img) for img in images] if as_png else images
