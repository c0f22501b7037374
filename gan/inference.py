"""Rewrites of a generator for sampling: the same function, computed for less.

    fold_batch_norms              batch norms folded into the convolutions before them
    upsample_convs_on_small_maps  FastGAN's upsample + 3x3 conv (+ GLU) on the small map
    prepack_cpu_convs             convolution weights in oneDNN's layout once, at load

`EmojiSampler` applies them when it loads a generator; the generator no longer trains as
it did after any of them. Each stays within float rounding of the original
(tests/test_gan_models.py); what each bought is in docs/benchmarks.md ("worker").
"""

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(generator: torch.nn.Module) -> torch.nn.Module:
    """`generator` (in eval mode) with each batch norm that follows a convolution folded
    into that convolution's weights and bias: the same function up to float rounding
    (within 2e-5), one pass over the activations fewer per layer (2-6% of a CPU
    forward). For sampling only: a folded generator no longer trains as it did."""
    for block in generator.modules():
        if not isinstance(block, torch.nn.Sequential):
            continue
        for i in range(len(block) - 1):
            conv, norm = block[i], block[i + 1]
            if isinstance(conv, torch.nn.modules.conv._ConvNd) and isinstance(
                norm, torch.nn.BatchNorm2d
            ):
                block[i] = fuse_conv_bn_eval(conv, norm, transpose=conv.transposed)
                block[i + 1] = torch.nn.Identity()
    return generator


class SubpixelUpConv(torch.nn.Module):
    """Nearest 2x upsampling, a 3x3 convolution and optionally a GLU, computed on the small
    map: the same function as `nn.Upsample(2) -> nn.Conv2d(3, padding=1) [-> nn.GLU(1)]`,
    for sampling (`upsample_convs_on_small_maps`).

    Each output pixel of an upsampled map sees a 2x2 patch of the small one, with taps
    that sum the 3x3 kernel's rows and columns by the pixel's phase (even or odd row,
    even or odd column). So one 2x2 convolution with four phases' worth of output channels
    on the (H, W) map, cropped per phase and interleaved, gives the (2H, 2W) map with 16
    multiply-adds a pixel pair where the upsampled 3x3 takes 36, and no upsampled copy.
    Measured here (bf16, one thread, the shipped model): the forward 1.3-1.5x faster at
    batches of 4-32, 1.2x at 2, the same at 1; fp32 within 2e-5 of the original.
    """

    def __init__(self, conv: torch.nn.Conv2d, glu: bool):
        super().__init__()
        weight = conv.weight.detach()  # (O, I, 3, 3)
        out_channels, in_channels = weight.shape[:2]
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(out_channels)

        def taps(w: torch.Tensor, phase: int, dim: int) -> torch.Tensor:
            # Even output rows see input rows (i-1, i) through kernel rows (0, 1+2); odd
            # ones (i, i+1) through (0+1, 2). The same for columns.
            first, middle, last = w.unbind(dim)
            pair = (first, middle + last) if phase == 0 else (first + middle, last)
            return torch.stack(pair, dim)

        # Phase p = 2 * row phase + column phase: (O, I, 2, 2) each.
        phases = [taps(taps(weight, a, 2), c, 3) for a in (0, 1) for c in (0, 1)]
        self.glu = glu
        self.channels = out_channels // 2 if glu else out_channels  # per output pixel
        if glu:
            # The GLU's values of all four phases, then its gates: one GLU over the stack
            # splits them (its fast path; on the interleaved map it ran 2-7x slower in
            # bf16 at 16-32 channels).
            half = self.channels
            stacked = torch.cat([p[:half] for p in phases] + [p[half:] for p in phases])
            stacked_bias = torch.cat([bias[:half]] * 4 + [bias[half:]] * 4)
        else:
            stacked, stacked_bias = torch.cat(phases), bias.repeat(4)
        self.conv = torch.nn.Conv2d(in_channels, len(stacked), 2, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(stacked)
            self.conv.bias.copy_(stacked_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (B, 4k, H+1, W+1), or (B, 8k, ...) before the GLU
        if self.glu:
            y = torch.nn.functional.glu(y, 1)
        batch, _, h, w = x.shape
        k = self.channels
        rows = y.permute(0, 2, 3, 1)  # (B, H+1, W+1, 4k), a view of the channels_last map
        out = torch.empty((batch, 2 * h, 2 * w, k), dtype=y.dtype, device=y.device)
        phases = out.view(batch, h, 2, w, 2, k)
        for p in range(4):
            a, c = divmod(p, 2)  # output row, column parity: its 2x2 window starts a, c late
            phases[:, :, a, :, c] = rows[:, a : a + h, c : c + w, p * k : (p + 1) * k]
        return out.permute(0, 3, 1, 2)  # (B, k, 2H, 2W), channels_last


def _is_nearest_2x(module: torch.nn.Module) -> bool:
    scale = getattr(module, "scale_factor", None)
    return (
        isinstance(module, torch.nn.Upsample)
        and module.mode == "nearest"
        and module.size is None
        and all(float(s) == 2.0 for s in (scale if isinstance(scale, tuple) else (scale,)))
    )


def _is_same_3x3(module: torch.nn.Module) -> bool:
    return (
        type(module) is torch.nn.Conv2d
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def upsample_convs_on_small_maps(generator: torch.nn.Module) -> torch.nn.Module:
    """`generator` with every `Upsample(2, nearest) -> Conv2d(3x3, padding 1)` in a
    `Sequential` (with a `GLU(1)` right after it, or after a folded batch norm's
    `Identity`) replaced by one `SubpixelUpConv`: the same function up to float rounding.
    For sampling only, after `fold_batch_norms` (a batch norm in between keeps the GLU
    apart). Generators without such blocks (the DCGAN body) come back as they were."""
    Identity = torch.nn.Identity
    for block in list(generator.modules()):
        if not isinstance(block, torch.nn.Sequential):
            continue
        i = 0
        while i < len(block) - 1:
            if _is_nearest_2x(block[i]) and _is_same_3x3(block[i + 1]):
                # The first module after the conv that is not a folded batch norm's Identity.
                j = next(
                    (k for k in range(i + 2, len(block)) if type(block[k]) is not Identity), None
                )
                glu = j is not None and type(block[j]) is torch.nn.GLU and block[j].dim == 1
                block[i] = SubpixelUpConv(block[i + 1], glu)
                block[i + 1] = Identity()
                if glu:
                    block[j] = Identity()
            i += 1
    return generator


class PrepackedConv2d(torch.nn.Module):
    """An `nn.Conv2d` for CPU inference whose weights oneDNN reorders once, at load.

    A plain CPU convolution reorders its weight into oneDNN's blocked layout on every call:
    for the layers with many weights and small maps that was most of their time (a batch-1
    forward of the FastGAN body: the 256 -> 1024 channel 2x2 convolution 1.1 ms -> 0.3 ms,
    a skip-layer gate's 4x4 one 0.24 -> 0.04 ms). The same function up to float rounding
    (bit for bit on the sampler's channels_last maps, measured on the shipped models). It
    calls the oneDNN ops that torch.compile's CPU freezing uses; `prepack_cpu_convs` keeps
    a plain convolution wherever they are missing.
    """

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        weight = conv.weight.detach().contiguous(memory_format=torch.channels_last)
        self.dtype = weight.dtype
        self.bias = None if conv.bias is None else conv.bias.detach().to(weight.dtype)
        # The blocked layout is chosen for an input shape; it serves every batch size.
        example = [1, weight.shape[1] * conv.groups, 8, 8]
        self.packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
            weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, example
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(self.dtype), self.packed, self.bias, self.padding, self.stride,
            self.dilation, self.groups, "none", [], "",
        )  # fmt: skip


def prepack_cpu_convs(generator: torch.nn.Module) -> torch.nn.Module:
    """`generator` (on the CPU, weights in their final dtype) with each `nn.Conv2d` (zero
    padding) replaced by a `PrepackedConv2d`; as it was where oneDNN or its ops are not
    there. For sampling only: the packed weights neither train nor move devices."""
    ops = torch.ops.mkldnn
    if not (torch.backends.mkldnn.is_available() and hasattr(ops, "_convolution_pointwise")):
        return generator
    for parent in list(generator.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.Conv2d and child.padding_mode == "zeros":
                parent._modules[name] = PrepackedConv2d(child)
    return generator
