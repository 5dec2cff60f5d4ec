"""Recognising DICOM files and series folders from their first bytes, without importing pydicom.

Dropping a folder asks every modality whether the folder is one case; that runs on the GUI thread,
so it must stay cheap: 132 bytes per file, no parsing.
"""

from __future__ import annotations

from pathlib import Path

_IGNORED_NAMES = {"dicomdir", "thumbs.db", "desktop.ini"}
_IGNORED_SUFFIXES = {".txt", ".md", ".json", ".xml", ".ini", ".csv", ".log", ".html", ".pdf"}


def has_dicom_magic(head: bytes) -> bool:
    """A DICOM Part 10 file: 128-byte preamble, then b"DICM"."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def is_dicom_file(path: Path) -> bool:
    try:
        with Path(path).open("rb") as handle:
            return has_dicom_magic(handle.read(132))
    except OSError:
        return False


def ignored(path: Path) -> bool:
    """Side files found beside a series (a DICOMDIR, notes, thumbnail caches) that are not slices."""
    name = path.name.lower()
    return name.startswith(".") or name in _IGNORED_NAMES or path.suffix.lower() in _IGNORED_SUFFIXES


def claims_folder(folder: Path) -> bool:
    """A folder without subfolders whose files (side files aside) are all DICOM is one series."""
    files = []
    for entry in Path(folder).iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            return False  # a study or export tree: its leaf folders are the series
        if not entry.is_file():
            return False  # a device, pipe or socket among the slices: never opened; listed on its own
        if not ignored(entry):
            files.append(entry)
    return bool(files) and all(is_dicom_file(p) for p in files)
