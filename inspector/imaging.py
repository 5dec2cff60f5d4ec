"""Reading 2D images the way an inspection tool must: any common format, bit depth and orientation.

PIL decodes; this module normalises what PIL returns into one display/analysis form (RGB uint8,
EXIF orientation applied, 16-bit and float images scaled from their actual value range) and turns
decoder failures into messages an operator understands.
"""

from __future__ import annotations

import io
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 4096 x 4096 and larger scans are normal here (a 10,000 x 10,000 wafer scan too); beyond that an
# image is refused before it is decoded: a 1 MB PNG can declare 20,000 x 20,000 pixels, 1.2 GB as RGB
# (a decompression bomb). PIL's own limit stays above ours as a second fence.
MAX_IMAGE_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = 2 * MAX_IMAGE_PIXELS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class CaseReadError(Exception):
    """A file could not be read as a case; the message is shown to the operator as is."""


def to_uint8(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale a high-bit-depth or float array into uint8 using its actual value range.

    A 12-bit sensor image stored as 16-bit uses a fraction of the 0..65535 range; scaling by the
    type's maximum would show it nearly black, so the observed min..max is used (NaNs ignored).
    """
    if array.dtype == np.uint8:
        return array, {}
    finite = array[np.isfinite(array)] if np.issubdtype(array.dtype, np.floating) else array
    if finite.size == 0:
        return np.zeros(array.shape, np.uint8), {"value_range": [0.0, 0.0]}
    lo, hi = float(finite.min()), float(finite.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.nan_to_num((array.astype(np.float64) - lo) * scale, nan=0.0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), {"value_range": [lo, hi]}


def decode_image(data: bytes, name: str = "image") -> tuple[np.ndarray, dict[str, Any]]:
    """Decode image bytes to an RGB uint8 array (H, W, 3) plus metadata about the original."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise CaseReadError(
                    f"{name}: {image.width:,} x {image.height:,} pixels is more than this workstation opens "
                    f"({MAX_IMAGE_PIXELS / 1e6:,.0f} million); it was not decoded"
                )
            image.load()
    except UnidentifiedImageError:
        raise CaseReadError(f"{name}: not an image this application can read (unknown or damaged format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CaseReadError(f"{name}: image is too large to open safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc)
        if "truncated" in text.lower():
            raise CaseReadError(f"{name}: the file is truncated (incomplete copy or interrupted transfer)") from None
        raise CaseReadError(f"{name}: the image is damaged and cannot be decoded ({text})") from None

    metadata: dict[str, Any] = {
        "format": image.format or "",
        "mode": image.mode,
        "width": image.width,
        "height": image.height,
    }
    shortfall = png_shortfall(data) if image.format == "PNG" else None
    if shortfall:
        metadata["warnings"] = [shortfall]
    orientation = image.getexif().get(0x0112, 1) if hasattr(image, "getexif") else 1
    if orientation and orientation != 1:
        metadata["exif_orientation"] = int(orientation)
        image = ImageOps.exif_transpose(image)
        metadata["width"], metadata["height"] = image.width, image.height

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raw = np.asarray(image)
        metadata["bit_depth"] = 16 if mode.startswith("I;16") else 32
        gray, extra = to_uint8(raw)
        metadata.update(extra)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        metadata["channels"] = 1
    elif mode in ("1", "L"):
        gray = np.asarray(image.convert("L"))
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        metadata["bit_depth"] = 1 if mode == "1" else 8
        metadata["channels"] = 1
    else:
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
            # Transparent areas are shown on white, as image viewers do.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        rgb = np.asarray(image.convert("RGB"))
        metadata["bit_depth"] = 8
        metadata["channels"] = 3
    return np.ascontiguousarray(rgb), metadata


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def png_shortfall(data: bytes) -> str | None:
    """Why a PNG that PIL decodes is still damaged: its pixel data ends before the last row (PIL
    fills the missing rows with black without a word). None when complete, or not a PNG we check
    (interlaced images are left to PIL). Reads the image data incrementally, never more than the
    header promises."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlace = data[24], data[25], data[28]
    if interlace or colour not in _PNG_CHANNELS or width * height == 0:
        return None
    row_bytes = 1 + (width * _PNG_CHANNELS[colour] * depth + 7) // 8
    expected = row_bytes * height
    inflater = zlib.decompressobj()
    got = 0
    position = 8
    while position + 8 <= len(data) and got < expected:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunk = data[position + 8 : position + 8 + length]
            try:
                got += len(inflater.decompress(chunk, expected - got + 1))
                while inflater.unconsumed_tail and got < expected:
                    got += len(inflater.decompress(inflater.unconsumed_tail, expected - got + 1))
            except zlib.error:
                break
        elif kind == b"IEND":
            break
        position += 12 + length
    if got >= expected:
        return None
    rows = got // row_bytes
    return f"the image data ends after {rows:,} of {height:,} rows (a truncated or damaged file): the rest shows black"


def read_image_file(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaseReadError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise CaseReadError(f"{path.name}: the file is empty")
    return decode_image(data, path.name)


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so the longest side is at most `max_side`, keeping the aspect."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
