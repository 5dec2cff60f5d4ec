"""What the model sees of a video: sampled frames as one labelled grid, or as a sequence of images.

The paper shows GPT-4V pedestrian and traffic videos as a few sampled frames side by side and
asks which frames are anomalous. Here every tile carries its real frame number printed large
("frame 123", 0-based like the viewer's counter), so the model can answer with frame ranges
and the answer maps back without guessing. The `frame_grid` map records where each tile lies in
the grid image, so a box drawn on a tile becomes a box on that frame.

Options (profile ``settings["render"]`` and the viewer's `render_options`):
``frames: [a, b]`` sample within a range; ``around: i`` consecutive samples centred on frame i
(``step`` frames apart, default a quarter second); ``samples: n`` (default 9); ``layout``:
``"grid"`` (default) or ``"sequence"``; ``max_side`` of the grid image (default 1024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from inspector.imaging import CaseReadError
from inspector.model import LoadedCase, View, ViewMap

from .source import FrameSource

DEFAULT_SAMPLES = 9
MAX_SAMPLES = 36
REFERENCE_FRAMES = 12
MIN_TILE_WIDTH = 224  # small frames are enlarged so that the printed frame number stays readable
GAP = 6
BACKGROUND = (24, 26, 30)


@dataclass
class Sampling:
    """Which frames are shown and why (for captions and tests)."""

    frames: list[int]
    first: int
    last: int
    mode: str  # "uniform", "range" or "around"


def _int_or_none(value: Any) -> int | None:
    try:
        return round(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def sample_frames(frame_count: int, fps: float, options: dict[str, Any]) -> Sampling:
    """The frame indices to show for these options (sorted, distinct, inside the video)."""
    last_index = frame_count - 1
    samples = _int_or_none(options.get("samples")) or DEFAULT_SAMPLES
    samples = max(1, min(MAX_SAMPLES, samples))
    chosen = options.get("frames")
    around = _int_or_none(options.get("around"))
    if isinstance(chosen, (list, tuple)) and len(chosen) == 2:
        ends = [_int_or_none(v) for v in chosen]
        if None not in ends:
            a, b = sorted(min(last_index, max(0, v)) for v in ends)  # type: ignore[type-var]
            return Sampling(_spread(a, b, samples), a, b, "range")
    if around is not None:
        centre = min(last_index, max(0, around))
        step = _int_or_none(options.get("step")) or max(1, round(fps / 4))
        span = step * (samples - 1)
        a = max(0, min(centre - span // 2, last_index - span))
        frames = sorted({min(last_index, a + k * step) for k in range(samples)})
        return Sampling(frames, frames[0], frames[-1], "around")
    return Sampling(_spread(0, last_index, samples), 0, last_index, "uniform")


def _spread(a: int, b: int, samples: int) -> list[int]:
    if b - a + 1 <= samples:
        return list(range(a, b + 1))
    return sorted({round(v) for v in np.linspace(a, b, samples)})


def readable_frame(source: FrameSource, index: int, reach: int = 3) -> tuple[int, np.ndarray]:
    """Frame `index`, or the nearest decodable neighbour when that frame is damaged."""
    error: CaseReadError | None = None
    for offset in [0] + [d for k in range(1, reach + 1) for d in (k, -k)]:
        candidate = index + offset
        if 0 <= candidate < source.frame_count:
            try:
                return candidate, source.frame(candidate)
            except CaseReadError as exc:
                error = error or exc
    raise error or CaseReadError(f"{source.name}: frame {index} cannot be read")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def tile_geometry(frame_size: tuple[int, int], count: int, max_side: int) -> tuple[int, int, int, int]:
    """(columns, tile width, tile height, label height) for a near-square grid within max_side."""
    fw, fh = frame_size
    best_cols, best_err = 1, math.inf
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        aspect = (cols * fw) / max(1.0, rows * fh * 1.15)
        err = abs(math.log(aspect)) + 0.05 * (cols * rows - count)
        if err < best_err:
            best_cols, best_err = cols, err
    cols = best_cols
    rows = math.ceil(count / cols)
    width = max(MIN_TILE_WIDTH, fw)
    width = min(width, (max_side - GAP * (cols + 1)) // cols)
    label_h = max(22, min(40, round(width * 0.12)))
    height = max(8, round(width * fh / fw))
    total_h = rows * (height + label_h) + GAP * (rows + 1)
    if total_h > max_side:  # tall frames: shrink to fit the height too
        scale = (max_side - GAP * (rows + 1) - rows * label_h) / (rows * height)
        width, height = max(16, int(width * scale)), max(8, int(height * scale))
    return cols, int(width), int(height), int(label_h)


def _label_bar(text: str, width: int, height: int) -> Image.Image:
    bar = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(bar)
    size = height - 6
    font = _font(size)
    while size > 9 and draw.textlength(text, font=font) > width - 8:
        size -= 2
        font = _font(size)
    draw.text((6, (height - size) // 2 - 1), text, fill=(255, 236, 64), font=font)
    return bar


def frame_label(index: int) -> str:
    return f"frame {index}"


def _grid_view(source: FrameSource, frames: list[tuple[int, np.ndarray]], caption: str, max_side: int) -> View:
    cols, tw, th, lh = tile_geometry(source.size, len(frames), max_side)
    rows = math.ceil(len(frames) / cols)
    canvas = Image.new("RGB", (cols * tw + GAP * (cols + 1), rows * (th + lh) + GAP * (rows + 1)), BACKGROUND)
    tiles = []
    for k, (index, rgb) in enumerate(frames):
        r, c = divmod(k, cols)
        x = GAP + c * (tw + GAP)
        y = GAP + r * (th + lh + GAP)
        canvas.paste(_label_bar(frame_label(index), tw, lh), (x, y))
        canvas.paste(Image.fromarray(rgb).resize((tw, th), Image.Resampling.BILINEAR), (x, y + lh))
        tiles.append({"frame": index, "x": x, "y": y + lh, "w": tw, "h": th})
    params = {"tiles": tiles, "frame_size": list(source.size), "frame_count": source.frame_count, "fps": source.fps}
    return View(label=caption, image=np.asarray(canvas), view_map=ViewMap("frame_grid", params))


def _sequence_view(source: FrameSource, index: int, rgb: np.ndarray, max_side: int) -> View:
    _, tw, th, lh = tile_geometry(source.size, 1, max_side)
    canvas = Image.new("RGB", (tw, th + lh), BACKGROUND)
    canvas.paste(_label_bar(frame_label(index), tw, lh), (0, 0))
    canvas.paste(Image.fromarray(rgb).resize((tw, th), Image.Resampling.BILINEAR), (0, lh))
    params = {
        "frame": index,
        "tiles": [{"frame": index, "x": 0, "y": lh, "w": tw, "h": th}],
        "frame_size": list(source.size),
        "frame_count": source.frame_count,
        "fps": source.fps,
    }
    return View(label=frame_label(index), image=np.asarray(canvas), view_map=ViewMap("frame", params))


def grid_caption(sampling: Sampling) -> str:
    what = {
        "uniform": "sampled across the whole video",
        "range": "sampled from the chosen range",
        "around": "around the cursor",
    }[sampling.mode]
    return f"frames {sampling.first}-{sampling.last}, {len(sampling.frames)} frames {what}"


def render(loaded: LoadedCase, options: dict[str, Any]) -> list[View]:
    """Sampled frames as one labelled grid (default) or one labelled view per frame."""
    source: FrameSource = loaded.data
    sampling = sample_frames(source.frame_count, source.fps, options)
    frames: dict[int, np.ndarray] = {}
    for index in sampling.frames:
        found, rgb = readable_frame(source, index)
        frames.setdefault(found, rgb)
    ordered = sorted(frames.items())
    max_side = _int_or_none(options.get("max_side")) or 1024
    if options.get("layout") == "sequence":
        return [_sequence_view(source, index, rgb, max_side) for index, rgb in ordered]
    return [_grid_view(source, ordered, grid_caption(sampling), max_side)]


def reference_images(loaded: LoadedCase) -> list[tuple[str, np.ndarray]]:
    """Evenly spread frames of a normal video, as the profile's normal references."""
    source: FrameSource = loaded.data
    name = str(loaded.metadata.get("name") or source.name)
    out = []
    for index in _spread(0, source.frame_count - 1, REFERENCE_FRAMES):
        found, rgb = readable_frame(source, index)
        out.append((f"{name} frame {found}", np.array(rgb)))
    return out
