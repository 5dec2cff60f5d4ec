"""Video containers (MP4, MKV, AVI, MOV, WebM) through PyAV, with frame-accurate random access.

Why an index of presentation timestamps: container headers often do not know the frame count
(MKV reports 0) and a time-based seek lands on a keyframe, not on the wanted frame. So on open
every video packet is demuxed (no decoding: fast) and the sorted packet timestamps become the
table frame index -> pts, together with the keyframes. Frame k is then found by seeking to the
last keyframe at or before pts[k] and decoding forward until the frame whose pts is pts[k].

The table is verified by decoding the last group of pictures: when decoding disagrees with the
packets (packed B-frames, a damaged tail) the table is rebuilt from one full decoding pass, so
the frame count is always what can actually be decoded.

Sequential reads (playback, the detector walking the video) continue the running decoder instead
of seeking again, which makes them as cheap as plain decoding.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inspector.imaging import CaseReadError

from .source import FrameSource

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


def _av():
    import av  # lazy: PyAV loads FFmpeg's libraries, which start-up does not need

    return av


def open_error(path: Path, exc: BaseException) -> CaseReadError:
    """An FFmpeg failure as a sentence for the operator."""
    text = str(exc)
    lowered = text.lower()
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        head = b""
    looks_like_video = head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3") or head[:4] == b"RIFF"
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        reason = f"it cannot be read ({getattr(exc, 'strerror', None) or text})"
    elif looks_like_video and ("invalid data" in lowered or "input/output" in lowered or "end of file" in lowered):
        reason = (
            "the file is incomplete or damaged (truncated: an interrupted copy or recording; "
            "its frame index is missing)"
        )
    elif "invalid data" in lowered:
        reason = "the file is damaged or is not a video"
    else:
        reason = "the file is incomplete or damaged"
    # FFmpeg's own words without its error number and the (possibly temporary) path
    detail = (getattr(exc, "strerror", None) or text.split(":")[0] or type(exc).__name__).strip()
    return CaseReadError(f"{path.name}: cannot be opened as a video: {reason} ({detail})")


class ContainerSource(FrameSource):
    """Frames of one video stream of a container file; the container is opened lazily."""

    kind = "container"

    def __init__(self, path: Path):
        self.path = Path(path)
        av = _av()
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise open_error(self.path, exc) from None
        try:
            if not container.streams.video:
                raise CaseReadError(f"{self.path.name}: contains no video stream (audio only or data file)")
            stream = container.streams.video[0]
            self.codec = stream.codec_context.name
            self.format_name = container.format.name
            self.time_base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 25.0
            self.declared_frames = int(stream.frames or 0)
            self.declared_duration_s = float(container.duration / 1e6) if container.duration else None
            pts, keys, demux_failed = self._packet_index(container, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
        finally:
            container.close()
        if not pts:
            raise CaseReadError(f"{self.path.name}: the video stream contains no frames")
        super().__init__(self.path.name, len(pts), fps, (width or 1, height or 1))
        self._pts: list[int] = []
        self._key_indices: list[int] = []
        self._index_of: dict[int, int] = {}
        self._truncated = demux_failed or self._shorter_than_announced(pts)
        self._set_index(pts, keys)
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._next_index: int | None = None  # the index the running decoder produces next
        self.rebuilt_index = False
        self._verify_tail()
        first = self.frame(0)
        if first.shape[1] != self.size[0] or first.shape[0] != self.size[1]:
            self.size = (first.shape[1], first.shape[0])

    # ------------------------------------------------------------------ index

    def _packet_index(self, container: Any, stream: Any) -> tuple[list[int], list[int], bool]:
        """(sorted pts of all video packets, indices of keyframes, demuxing failed) without decoding."""
        av = _av()
        entries: list[tuple[int, bool]] = []
        failed = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    stamp = entries[-1][0] + 1 if entries else 0
                entries.append((int(stamp), bool(packet.is_keyframe)))
        except av.FFmpegError:
            failed = True  # a damaged tail: keep what was read; the tail check decides
        entries.sort(key=lambda e: e[0])
        pts: list[int] = []
        keys: list[int] = []
        for stamp, key in entries:
            if pts and stamp == pts[-1]:
                continue  # duplicated timestamps (broken muxers): one frame per pts
            if key:
                keys.append(len(pts))
            pts.append(stamp)
        return pts, keys, failed

    def _shorter_than_announced(self, pts: list[int]) -> bool:
        if not self.declared_duration_s or not self.time_base:
            return False
        end_s = float((pts[-1] - pts[0]) * self.time_base) + 1.0 / self.fps
        return self.declared_duration_s > end_s + 2.0 / self.fps

    def _set_index(self, pts: list[int], keys: list[int]) -> None:
        """Install the table; a cut file loses its last frames behind a gap of missing frames.

        A recording cut mid-stream keeps a few frames whose reordered neighbours are gone (B-frames
        between the last P-frames): numbering them consecutively would shift their frame numbers,
        so they are dropped and the readable run up to the gap is the video.
        """
        if self._truncated and len(pts) > 3:
            typical = float(np.median(np.diff(pts)))
            while len(pts) > 2 and pts[-1] - pts[-2] > 1.5 * typical:
                pts = pts[:-1]
        self._pts = list(pts)
        self._key_indices = [k for k in keys if k < len(pts)] or [0]
        self._index_of = {p: i for i, p in enumerate(pts)}
        self.frame_count = len(pts)
        with self._lock:
            self.clear_cache()

    def _verify_tail(self) -> None:
        """Decode the last group of pictures; rebuild the index by decoding if it disagrees."""
        start = self._key_indices[bisect.bisect_right(self._key_indices, self.frame_count - 1) - 1]
        expected = self._pts[start:]
        got: list[int | None] = []
        try:
            self._seek(start)
            for frame in self._iter_frames():
                got.append(frame.pts)
                if len(got) > len(expected) + 16:
                    break
        except _av().FFmpegError:
            got = []
        known = set(expected)
        decoded = {p for p in got if p is not None and p >= expected[0]}
        extra = [p for p in got if p is None or (p not in known and expected[0] <= p <= expected[-1])]
        if not known <= decoded or extra:
            self._rebuild_index()
        # the check ran the decoder to the end: the next read must seek (with one keyframe in the
        # whole file, "keep decoding forward" from here would find nothing)
        self._frames = None
        self._next_index = None

    def _rebuild_index(self) -> None:
        """The exact table from one full decoding pass (slow, only for unusual files)."""
        av = _av()
        self._close_container()
        pts: list[int] = []
        keys: list[int] = []
        container = av.open(str(self.path))
        try:
            stream = container.streams.video[0]
            try:
                for frame in container.decode(stream):
                    stamp = frame.pts if frame.pts is not None else (pts[-1] + 1 if pts else 0)
                    if pts and stamp <= pts[-1]:
                        stamp = pts[-1] + 1
                    if frame.key_frame:
                        keys.append(len(pts))
                    pts.append(int(stamp))
            except av.FFmpegError:
                pass  # damaged from here on: the readable frames are what the case has
        finally:
            container.close()
        if not pts:
            raise CaseReadError(f"{self.path.name}: no frame of the video could be decoded (the file is damaged)")
        self._set_index(pts, keys)
        self.rebuilt_index = True

    # ------------------------------------------------------------------ decoding

    def _open(self) -> None:
        if self._container is None:
            av = _av()
            try:
                self._container = av.open(str(self.path))
            except (av.FFmpegError, OSError) as exc:
                raise open_error(self.path, exc) from None
            self._stream = self._container.streams.video[0]
            self._frames = None
            self._next_index = None

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
                self._stream = None
                self._frames = None
                self._next_index = None

    def _seek(self, key_index: int) -> None:
        """Position the decoder on keyframe `key_index` (frame index of a keyframe)."""
        self._open()
        self._container.seek(self._pts[key_index], stream=self._stream, backward=True, any_frame=False)
        self._frames = None
        self._next_index = key_index

    def _iter_frames(self) -> Iterator[Any]:
        if self._frames is None:
            self._frames = iter(self._container.decode(self._stream))
        return self._frames

    def _index_for(self, frame: Any, previous: int | None) -> int:
        if frame.pts is not None and frame.pts in self._index_of:
            return self._index_of[frame.pts]
        return (previous + 1) if previous is not None else 0

    def _decode(self, index: int) -> None:
        av = _av()
        key = self._key_indices[bisect.bisect_right(self._key_indices, index) - 1]
        # keep decoding forward when the target is ahead and no later keyframe lies in between
        running = self._next_index is not None and self._frames is not None and key <= self._next_index <= index
        attempts = [-1, key] if running else [key]  # -1: continue without seeking
        earlier = [k for k in self._key_indices if k < key]
        attempts += list(reversed(earlier[-2:])) + ([0] if key != 0 else [])
        last_error: Exception | None = None
        for start in dict.fromkeys(attempts):
            try:
                if start >= 0:
                    self._seek(start)
                if self._decode_until(index):
                    return
            except av.FFmpegError as exc:
                last_error = exc
                self._close_container()
        detail = f" ({last_error})" if last_error else ""
        raise CaseReadError(f"{self.name}: frame {index} could not be decoded (the file is damaged there){detail}")

    def _decode_until(self, index: int) -> bool:
        """Decode forward, caching frames, until frame `index`; False if the decoder passed it."""
        previous = (self._next_index - 1) if self._next_index else None
        first = True
        for frame in self._iter_frames():
            position = self._index_for(frame, previous)
            if first and position > index:
                return False  # the seek landed after the target: the caller tries an earlier keyframe
            first = False
            previous = position
            self._next_index = position + 1
            if position >= index - 2:  # keep the target and its direct neighbours (stepping back)
                self._store(position, frame.to_ndarray(format="rgb24"))
            if position >= index:
                return position == index or self.is_cached(index)
        self._frames = None
        self._next_index = None
        return self.is_cached(index)

    def close(self) -> None:
        with self._lock:
            self._close_container()
            super().close()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            {
                "source": "container",
                "container": self.format_name,
                "codec": self.codec,
                "keyframes": len(self._key_indices),
            }
        )
        if self.declared_duration_s and self.frame_count < 0.9 * self.declared_duration_s * self.fps - 1:
            info["warning"] = (
                f"the file ends early: {self.frame_count} frames are readable of about "
                f"{round(self.declared_duration_s * self.fps)} announced (truncated or damaged)"
            )
        elif self.rebuilt_index:
            info["note"] = "frame index rebuilt by decoding (unusual or damaged stream)"
        return info
