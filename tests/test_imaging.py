"""Image reading: formats, bit depths, orientation, and bad files with clear messages."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inspector.imaging import CaseReadError, decode_image, read_image_file, resize_max_side, to_uint8
from tests.conftest import textured_image


@pytest.mark.parametrize(
    "fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("WEBP", ".webp")]
)
def test_common_formats_decode_to_rgb(tmp_path, fmt, suffix):
    source = textured_image(1, (48, 64))
    path = tmp_path / f"img{suffix}"
    Image.fromarray(source).save(path, format=fmt)
    rgb, meta = read_image_file(path)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    tolerance = 0 if fmt in ("PNG", "BMP", "TIFF") else 40
    assert np.abs(rgb.astype(int) - source.astype(int)).mean() <= tolerance
    assert meta["width"] == 64 and meta["height"] == 48


def test_sixteen_bit_grayscale_tiff_uses_its_value_range(tmp_path):
    # A 12-bit sensor image in a 16-bit container: 0..4095 must still span black to white.
    ramp = np.tile(np.linspace(0, 4095, 100, dtype=np.uint16), (20, 1))
    path = tmp_path / "sensor.tif"
    Image.fromarray(ramp).save(path)
    rgb, meta = read_image_file(path)
    assert meta["bit_depth"] == 16 and meta["channels"] == 1
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert meta["value_range"] == [0.0, 4095.0]


def test_grayscale_and_rgba_inputs(tmp_path):
    gray = (np.arange(30 * 40) % 256).astype(np.uint8).reshape(30, 40)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgb, meta = read_image_file(tmp_path / "g.png")
    assert meta["channels"] == 1 and (rgb[..., 1] == gray).all()
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, _ = read_image_file(tmp_path / "a.png")
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[9, 9]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    # Camera stored the pixels landscape (60 wide, 30 high) with "rotate 90° CW to display" (6).
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, :10] = 255  # white band on the left edge of the stored pixels
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    pil.save(path, exif=exif, quality=95)
    rgb, meta = read_image_file(path)
    assert rgb.shape[:2] == (60, 30)  # displayed portrait
    assert meta["exif_orientation"] == 6
    assert rgb[:10].mean() > 200 and rgb[-10:].mean() < 50  # left band became the top band


def test_truncated_empty_and_foreign_files_give_clear_messages(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(textured_image(2, (200, 200))).save(buffer, format="PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(CaseReadError, match="truncated"):
        read_image_file(truncated)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(CaseReadError, match="empty"):
        read_image_file(empty)
    with pytest.raises(CaseReadError, match="not an image"):
        decode_image(b"%PDF-1.7 not really an image", "report.png")
    with pytest.raises(CaseReadError, match="cannot be read"):
        read_image_file(tmp_path / "missing.png")


def test_resize_keeps_aspect_and_never_upscales():
    image = np.zeros((1000, 4000, 3), np.uint8)
    assert resize_max_side(image, 1024).shape == (256, 1024, 3)
    small = np.zeros((10, 20, 3), np.uint8)
    assert resize_max_side(small, 1024) is small


def test_to_uint8_handles_nan_and_constant_images():
    data = np.array([[np.nan, 1.0], [2.0, 3.0]])
    out, meta = to_uint8(data)
    assert out[0, 0] == 0 and out[1, 1] == 255 and meta["value_range"] == [1.0, 3.0]
    flat, _ = to_uint8(np.full((3, 3), 7, np.uint16))
    assert (flat == 0).all()
