"""Reading a video case: a container file or a folder of frames -> LoadedCase with a frame source."""

from __future__ import annotations

from pathlib import Path

from inspector.imaging import CaseReadError
from inspector.model import LoadedCase, Modality

from .container import VIDEO_EXTENSIONS, ContainerSource
from .frames import open_folder
from .source import FrameSource

# HEIF/AVIF still images are ISO-BMFF files too: their brands must not be taken for videos
_STILL_BRANDS = (b"heic", b"heix", b"heif", b"mif1", b"msf1", b"avif", b"avis")


def sniff(path: Path, head: bytes) -> bool:
    """MP4/MOV (ftyp box), Matroska/WebM (EBML) and AVI (RIFF....AVI) by their first bytes."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _STILL_BRANDS
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


def read(path: Path) -> LoadedCase:
    path = Path(path)
    if path.is_dir():
        source, metadata = open_folder(path)
        return LoadedCase(modality=Modality.VIDEO.value, data=source, metadata={"name": path.name, **metadata})
    if not path.exists():
        raise CaseReadError(f"{path.name}: the file does not exist (moved or deleted?)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CaseReadError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise CaseReadError(f"{path.name}: the file is empty")
    source: FrameSource = ContainerSource(path)
    metadata = {"name": path.name, **source.describe()}
    return LoadedCase(modality=Modality.VIDEO.value, data=source, metadata=metadata)


__all__ = ["VIDEO_EXTENSIONS", "read", "sniff"]
