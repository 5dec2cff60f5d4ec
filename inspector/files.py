"""What the workstation agrees to open: regular files and folders, nothing else.

A path named ``scan.png`` can be a symlink to ``/dev/zero`` (read until memory runs out: a device
reports a size of 0), a FIFO (the read blocks for ever) or a socket. Every path a case, a reference
or a folder claim comes from is checked here before a byte is read; symlinks are followed and the
target is what counts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from inspector.imaging import CaseReadError


def is_regular_file(path: str | Path) -> bool:
    """True for a regular file (after following symlinks); False for devices, pipes, sockets, folders
    and paths that cannot be looked at."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def require_regular_file(path: str | Path) -> None:
    """Raise `CaseReadError` with an operator message unless `path` is a regular file."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CaseReadError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISREG(mode):
        return
    kind = (
        "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a pipe"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a folder"
        if stat.S_ISDIR(mode)
        else "not a regular file"
    )
    target = f" (it points to {os.path.realpath(path)})" if path.is_symlink() else ""
    raise CaseReadError(f"{path.name} is {kind}{target}, not a file: it was not read.")
