"""Folders of numbered image frames as one video case, and their ground-truth labels.

Which folders are videos: a folder is claimed when its images look like a frame dump, not like a
folder of photos, because a wrong claim would turn 200 photos of parts into one "video". All
images share one extension and one name pattern ``<prefix><number><suffix>``, the numbers are
distinct and nearly consecutive (>= 90 % of the span present), there are at least two, the first
and last have the same pixel size, the names say "frames" (bare numbers ``000.jpg``, or a
frame-dump prefix such as ``frame_0001.png``, ``f12.png``, ``out003.png``; any prefix when the
folder or its parent is called ``frames``/``video``/``clip``), the first image carries no camera
EXIF (make/model: photos), and no subfolder is itself a frame folder (then the parent is a
collection of videos, as ``testing/frames`` of UCSD Ped2, and each subfolder becomes its own
case). So ``part_0001.png ... part_0200.png`` from a line camera, ``IMG_0001.JPG`` from a phone,
``Y1.jpg, Y10.jpg`` of mixed sizes or ``exp1_num_4595.jpg`` beside its ``.png`` mask stay images.
Frames are ordered by their number (natural order: 2 before 10).

Labels: a ``labels.csv`` in the folder or up to three levels above it with the columns
``video,first_abnormal_frame,last_abnormal_frame`` (the UCSD Ped2 layout: 1-based, inclusive;
frame k is the file ``{k-1:03d}.jpg``). Rows whose video matches the folder name ("01" == "1")
become 0-based ground-truth frame ranges in the case metadata.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from inspector.imaging import CaseReadError, read_image_file

from .source import FrameSource

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
DEFAULT_FOLDER_FPS = 10.0  # a folder has no frame rate; UCSD Ped2 was captured at about 10 fps
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")
_LABEL_FILES = ("labels.csv", "frame_labels.csv")
_FRAME_PREFIXES = {"", "frame", "frames", "fr", "f", "out", "thumb", "vid", "video", "clip", "seq"}
_FRAME_FOLDERS = {"frames", "frame", "video", "videos", "clip", "clips", "sequence", "sequences"}
# a module-level memory of labels found on a folder's original path, keyed by its content, so a
# copy of the folder (the project's unpacked embedded copy) still knows its ground truth this session
_KNOWN_LABELS: dict[tuple[Any, ...], dict[str, Any]] = {}


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key with digit runs compared as numbers: frame2 < frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def _image_files(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_EXTENSIONS]


def frame_files(folder: Path) -> list[Path] | None:
    """The folder's frames in order, or None when its images do not look like a frame sequence."""
    files = _image_files(folder)
    if len(files) < 2:
        return None
    if len({p.suffix.lower() for p in files}) != 1:
        return None
    patterns: set[tuple[str, str]] = set()
    numbers: list[int] = []
    for p in files:
        match = _NUMBERED.match(p.stem)
        if match is None:
            return None
        patterns.add((match.group(1).lower(), match.group(3).lower()))
        numbers.append(int(match.group(2)))
    if len(patterns) != 1 or len(set(numbers)) != len(numbers):
        return None
    prefix = next(iter(patterns))[0].strip(" _-.#").lower()
    if prefix not in _FRAME_PREFIXES and not {folder.name.lower(), folder.parent.name.lower()} & _FRAME_FOLDERS:
        return None
    span = max(numbers) - min(numbers) + 1
    if len(numbers) < 0.9 * span:
        return None
    ordered = sorted(files, key=lambda p: natural_key(p.name))
    first, last = _header(ordered[0]), _header(ordered[-1])
    if first is not None and last is not None and (first != last or first[1]):
        return None  # frames of different sizes, or camera photos: separate images
    # An unreadable first or last frame does not break up a sequence its names make plain: the folder
    # stays one case, and reading it says which frame is damaged (instead of N image cases and an error).
    return ordered


def _header(path: Path) -> tuple[tuple[int, int], bool] | None:
    """(pixel size, has camera EXIF) from the file header, or None if it is not readable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            return image.size, bool(exif.get(0x010F) or exif.get(0x0110))  # Make, Model
    except Exception:  # noqa: BLE001 - an unreadable file is simply "not a frame"
        return None


def claims_folder(folder: Path) -> bool:
    """True when the folder is one video given as numbered frames (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir() or frame_files(folder) is None:
        return False
    try:
        subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return False
    return not any(frame_files(sub) is not None for sub in subfolders)


def _video_key(name: str) -> str:
    name = name.strip()
    return str(int(name)) if name.isdigit() else name.lower()


def find_labels(folder: Path, levels: int = 3) -> tuple[list[list[int]], Path] | None:
    """Ground-truth ranges (0-based, inclusive) of this frame folder from a labels file above it."""
    wanted = _video_key(folder.name)
    current = folder
    for _ in range(levels + 1):
        for name in _LABEL_FILES:
            candidate = current / name
            if candidate.is_file():
                ranges = _read_label_rows(candidate, wanted)
                if ranges is not None:
                    return ranges, candidate
        if current.parent == current:
            break
        current = current.parent
    return None


def _read_label_rows(path: Path, wanted: str) -> list[list[int]] | None:
    """Rows of one video (None when the file does not list it or has another format)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    found: list[list[int]] | None = None
    for row in rows:
        video = row.get("video")
        first, last = row.get("first_abnormal_frame"), row.get("last_abnormal_frame")
        if video is None or first is None or last is None or _video_key(video) != wanted:
            continue
        found = found if found is not None else []
        try:
            a, b = int(float(first)), int(float(last))
        except ValueError:
            continue  # an empty cell: the video has no anomaly
        if a >= 1 and b >= a:
            found.append([a - 1, b - 1])  # 1-based inclusive -> 0-based inclusive
    return found


class FolderSource(FrameSource):
    """Frames stored as numbered image files."""

    kind = "folder"

    def __init__(self, folder: Path, files: list[Path], fps: float = DEFAULT_FOLDER_FPS):
        self.folder = Path(folder)
        self.files = list(files)
        first, _ = read_image_file(self.files[0])
        super().__init__(self.folder.name, len(self.files), fps, (first.shape[1], first.shape[0]))
        with self._lock:
            self._store(0, first)
        self.frame(self.frame_count - 1)  # a damaged last frame is reported now, not mid-review

    def _decode(self, index: int) -> None:
        rgb, _ = read_image_file(self.files[index])
        self._store(index, rgb)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        numbers = [int(m.group(2)) for p in self.files if (m := _NUMBERED.match(p.stem))]
        info.update(
            {
                "source": "frames",
                "first_file": self.files[0].name,
                "last_file": self.files[-1].name,
                "fps_assumed": True,
            }
        )
        if numbers and max(numbers) - min(numbers) + 1 != len(numbers):
            info["note"] = f"{max(numbers) - min(numbers) + 1 - len(numbers)} frame numbers are missing from the folder"
        return info


def open_folder(folder: Path) -> tuple[FolderSource, dict[str, Any]]:
    """A frame folder as a source plus the metadata of its case (labels included)."""
    folder = Path(folder)
    files = frame_files(folder)
    if files is None:
        images = _image_files(folder)
        if not images:
            raise CaseReadError(
                f"{folder.name}: the folder contains no image frames "
                f"({', '.join(FRAME_EXTENSIONS)} files named by frame number)"
            )
        raise CaseReadError(
            f"{folder.name}: the {len(images)} image(s) in the folder are not a numbered frame "
            "sequence (need >= 2 frames of one type and size named like 000.jpg, 001.jpg ...)"
        )
    source = FolderSource(folder, files)
    metadata = source.describe()
    key = _content_key(folder.name, files)
    found = find_labels(folder)
    if found is not None:
        ranges, labels_path = found
        labels = {
            "ground_truth_frames": ranges,
            "labels_file": labels_path.name,
            "ground_truth": "anomalous" if ranges else "normal",
        }
        _KNOWN_LABELS[key] = labels
    else:
        labels = _KNOWN_LABELS.get(key, {})
    metadata.update(labels)
    return source, metadata


def _content_key(name: str, files: list[Path]) -> tuple[Any, ...]:
    sizes = []
    for p in files:
        try:
            sizes.append((p.name, p.stat().st_size))
        except OSError:
            sizes.append((p.name, -1))
    return (name, tuple(sizes))
