"""Heat-map colouring for overlays (no matplotlib: a small fixed 'inferno'-like ramp)."""

from __future__ import annotations

import numpy as np

_STOPS = np.array(
    [
        [0.00, 0, 0, 4],
        [0.25, 87, 16, 110],
        [0.50, 188, 55, 84],
        [0.75, 249, 142, 9],
        [1.00, 252, 255, 164],
    ],
    dtype=np.float64,
)


def heat_to_rgba(heat: np.ndarray, opacity: float = 0.55, floor: float = 0.35) -> np.ndarray:
    """Colour a [0,1] heat map; values below `floor` stay transparent so normal areas stay readable."""
    h = np.clip(np.nan_to_num(heat.astype(np.float64)), 0.0, 1.0)
    rgba = np.empty((*h.shape, 4), np.uint8)
    for channel in range(3):
        rgba[..., channel] = np.interp(h, _STOPS[:, 0], _STOPS[:, channel + 1]).astype(np.uint8)
    alpha = np.clip((h - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0) * opacity * 255.0
    rgba[..., 3] = alpha.astype(np.uint8)
    return rgba
