"""The frame source every part of the video modality reads frames through.

A `LoadedCase.data` of a video is one of these objects, not an array: a 10-minute 1080p video
is 100 GB decoded. Frames are decoded on demand and a few recent ones kept (LRU, bounded in
bytes). The renderer (worker thread), the viewer's decoder thread and the offline detector may
ask for frames at the same time, so every decode happens under one lock per source.

Frame numbers are 0-based indices in presentation order everywhere (tile labels, Region.detail,
the viewer's counter): frame k of a Ped2-style folder is the file ``{k:03d}.jpg``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

CACHE_BYTES = 64 * 1024 * 1024  # decoded frames kept per source (the service keeps up to 8 cases open)
MIN_CACHED_FRAMES = 8


class FrameSource:
    """Random access to the RGB uint8 frames of one video (subclasses implement `_decode`)."""

    kind = "frames"

    def __init__(self, name: str, frame_count: int, fps: float, size: tuple[int, int]):
        self.name = name
        self.frame_count = int(frame_count)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.size = (int(size[0]), int(size[1]))  # (width, height)
        self._lock = threading.RLock()  # the decoder: one seek-and-decode at a time
        # the frame cache has its own lock, held only for dictionary operations, so the GUI thread
        # asking for a decoded frame never waits behind a long seek in a worker
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        frame_bytes = max(1, self.size[0] * self.size[1] * 3)
        self._cache_limit = max(MIN_CACHED_FRAMES, CACHE_BYTES // frame_bytes)

    def __len__(self) -> int:
        return self.frame_count

    def __repr__(self) -> str:
        w, h = self.size
        return f"<{type(self).__name__} {self.name!r}: {self.frame_count} frames {w}x{h} @ {self.fps:g} fps>"

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.frame_count:
            raise IndexError(f"{self.name}: frame {index} does not exist (frames 0-{self.frame_count - 1})")
        return index

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as RGB uint8 (H, W, 3); read-only, shared with the cache."""
        index = self.check_index(index)
        cached = self._from_cache(index)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._from_cache(index)  # decoded by another thread meanwhile
            if cached is not None:
                return cached
            self._decode(index)
            found = self._from_cache(index)
            if found is None:  # pragma: no cover - a subclass bug, not a file problem
                raise RuntimeError(f"{self.name}: frame {index} was not produced by the decoder")
            return found

    def _from_cache(self, index: int) -> np.ndarray | None:
        with self._cache_lock:
            found = self._cache.get(index)
            if found is not None:
                self._cache.move_to_end(index)
            return found

    def cached(self, index: int) -> np.ndarray | None:
        """The frame if it is already decoded (never decodes, never waits for a decoder; for the GUI thread)."""
        with self._cache_lock:
            return self._cache.get(int(index))

    def is_cached(self, index: int) -> bool:
        with self._cache_lock:
            return index in self._cache

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def _store(self, index: int, rgb: np.ndarray) -> None:
        """Keep a decoded frame (called by `_decode`, under the lock)."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.shape[1] != self.size[0] or rgb.shape[0] != self.size[1]:
            rgb = _resize(rgb, self.size)
        rgb.setflags(write=False)
        with self._cache_lock:
            self._cache[index] = rgb
            self._cache.move_to_end(index)
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)

    def _decode(self, index: int) -> None:
        """Decode frame `index` (and possibly neighbours) into the cache via `_store`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files and cached frames; the source reopens lazily if asked again."""
        with self._lock:
            self.clear_cache()

    def describe(self) -> dict[str, Any]:
        w, h = self.size
        return {
            "frame_count": self.frame_count,
            "fps": round(self.fps, 4),
            "width": w,
            "height": h,
            "duration_s": round(self.duration_s, 3),
            "frame_numbering": "0-based",
        }


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frames of another size (a mixed folder, a mid-stream resolution change) are fitted to the first."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
