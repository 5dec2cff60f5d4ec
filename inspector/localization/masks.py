"""Region masks: the `Proposal` every proposal method returns, and a compact run-length encoding.

Masks travel with prompts (the mark -> mask map) and with stored regions (the highlighted mask in
the viewer), so they are stored as JSON run lengths rather than PNG blobs: a proposal mask is a
few blobs, a few hundred runs at most, and JSON keeps the record readable in the audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


@dataclass
class Proposal:
    """A candidate region: a boolean mask in the pixels of the image it was proposed on."""

    mask: np.ndarray = field(repr=False)  # bool (H, W)
    score: float = 0.0  # the method's ranking score, higher first (0..1 where the method can)
    source: str = ""  # "sam", "segments", "heatmap", "operator"
    label: str = ""

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def bbox(self) -> Box:
        """Bounding box of the mask (x1/y1 exclusive); (0, 0, 0, 0) for an empty mask."""
        return mask_bbox(self.mask)


def mask_bbox(mask: np.ndarray) -> Box:
    """Bounding box of a boolean mask (x1/y1 exclusive); (0, 0, 0, 0) when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Run lengths of a boolean mask in row-major order, starting with a run of zeros.

    ``{"size": [h, w], "counts": [zeros, ones, zeros, ...]}`` (the uncompressed COCO layout, but
    row-major). A mask that starts with ones has a leading 0 count.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a mask is 2-D, got shape {m.shape}")
    flat = m.ravel()
    if flat.size == 0:
        return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": [int(c) for c in counts]}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """The boolean mask of `encode_mask` output; ValueError when the counts do not fill the size."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle.get("counts", []), dtype=np.int64)
    if counts.size and (counts < 0).any():
        raise ValueError("negative run length in a mask")
    if int(counts.sum()) != h * w:
        raise ValueError(f"mask runs cover {int(counts.sum())} pixels, the size is {h}x{w}")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(h, w)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to (h, w) (pixel centres sampled)."""
    h, w = mask.shape
    th, tw = shape
    if (h, w) == (th, tw):
        return mask.astype(bool, copy=True)
    ys = np.minimum((np.arange(th) + 0.5) * h / th, h - 1).astype(np.int64)
    xs = np.minimum((np.arange(tw) + 0.5) * w / tw, w - 1).astype(np.int64)
    return np.asarray(mask, dtype=bool)[ys[:, None], xs[None, :]]
