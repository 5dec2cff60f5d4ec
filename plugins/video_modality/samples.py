"""Demo samples of the video modality: walkway camera clips, one with a cart (generated, MPEG-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.model import Profile
from inspector.samples import DemoSet


def samples(folder: Path) -> list[DemoSet]:
    """Write the demo clips into `folder` and describe their profile."""
    folder.mkdir(parents=True, exist_ok=True)
    video = DemoSet(
        Profile(
            name="Walkway camera (demo)",
            class_name="pedestrian walkway",
            modality="video",
            domain_preset="surveillance",
            normal_standards="Only pedestrians walking at ordinary pace along the walkway.",
            expected_defects="vehicles or carts on the walkway\nrunning\nobjects thrown",
        )
    )
    for seed in (1, 4, 5, 6):  # busy normal clips: walkers anywhere on the walkway are normal
        video.references.append(
            write_walkway_video(folder / f"walkway_normal_reference_{seed}.mp4", seed, with_cart=False, walkers=16)
        )
    video.cases[write_walkway_video(folder / "walkway_clip_normal.mp4", 2, with_cart=False)] = "normal"
    video.cases[write_walkway_video(folder / "walkway_clip_cart.mp4", 3, with_cart=True)] = "anomalous"
    return [video]


def write_walkway_video(path: Path, seed: int, with_cart: bool, frames: int = 72, walkers: int = 6) -> Path:
    """A top-down walkway: pedestrians (small slow blobs) and, optionally, a fast bright cart."""
    import av

    h, w = 144, 224
    yy, xx = np.mgrid[:h, :w]
    # one fixed camera: the walkway itself is the same in every clip, only the people differ
    ground_noise = np.random.default_rng(0).normal(0, 3, (h, w))
    ground = (110 + 20 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + ground_noise).clip(0, 255)
    rng = np.random.default_rng(seed)
    people = [(rng.uniform(10, w - 10), rng.uniform(20, h - 20), rng.uniform(-0.8, 0.8)) for _ in range(walkers)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 600_000
        for k in range(frames):
            frame = ground.copy()
            for x0, y0, vy in people:
                cy = (y0 + vy * k) % h
                frame[(xx - x0) ** 2 + (yy - cy) ** 2 < 16] = 40
            if with_cart and 30 <= k < 54:
                cx = 10 + (k - 30) * 8
                frame[(abs(xx - cx) < 9) & (abs(yy - 70) < 6)] = 235
            rgb = np.repeat(frame.astype(np.uint8)[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
