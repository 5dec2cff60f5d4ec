"""Hostile inputs built byte by byte, shared by tests/test_hostile_input.py and benchmarks/robustness.py."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def short_png(path: Path, width: int = 400, height: int = 300, rows: int = 10) -> Path:
    """A PNG whose header promises `height` rows but whose data holds only `rows` (PIL decodes it,
    filling the rest with black)."""
    raw = b"".join(b"\x00" + bytes([128]) * width for _ in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path
