"""ImageNet classification with the bundled EfficientNet-Lite0 weights.

The product does not need ImageNet labels; this exists so that tests (and a self-test mode) can
prove that the weights were loaded and wired correctly: a cat photo must come out as a cat.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as nnf

from inspector.detector.efficientnet_lite import get_model, to_tensor
from inspector.paths import resources_dir

INPUT_SIZE = 224
CROP_FRACTION = 0.875  # the usual ImageNet evaluation crop: resize to 256, centre-crop 224


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 class names in index order, from resources/imagenet_classes.txt."""
    names = (resources_dir() / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    names = [n for n in names if n.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return tuple(names)


def _center_crop_input(image: np.ndarray) -> torch.Tensor:
    x = to_tensor(image)
    h, w = x.shape[-2:]
    scale = INPUT_SIZE / CROP_FRACTION / min(h, w)
    size = (max(INPUT_SIZE, round(h * scale)), max(INPUT_SIZE, round(w * scale)))
    x = nnf.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    top = (size[0] - INPUT_SIZE) // 2
    left = (size[1] - INPUT_SIZE) // 2
    return x[..., top : top + INPUT_SIZE, left : left + INPUT_SIZE]


def classify_imagenet(image: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
    """Top-k (class name, probability) for an RGB or gray image (uint8, uint16 or float)."""
    model = get_model()
    with torch.inference_mode():
        probs = model(_center_crop_input(image)).softmax(-1)[0]
    values, indices = probs.topk(min(top_k, probs.numel()))
    names = imagenet_classes()
    return [(names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
