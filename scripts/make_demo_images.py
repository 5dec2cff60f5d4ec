"""Regenerate the demo material in plugins/image_modality/demo/ from CC0 textures bundled with scikit-image.

Run once by a developer (the PNGs are committed); the application never runs this. The source
textures are CC0 (see plugins/image_modality/demo/ATTRIBUTION.md); the defects are painted synthetically here,
deterministically, so the demo is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from skimage import data

OUT = Path(__file__).resolve().parent.parent / "plugins" / "image_modality" / "demo"
CROP = 224


def crops(texture: np.ndarray, origins: list[tuple[int, int]]) -> list[np.ndarray]:
    return [texture[y : y + CROP, x : x + CROP].copy() for x, y in origins]


def paint_crack(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    x, y = rng.integers(50, 90), rng.integers(40, 80)
    points = [(x, y)]
    for _ in range(9):
        x += int(rng.integers(6, 14))
        y += int(rng.integers(-3, 12))
        points.append((x, y))
    draw.line(points, fill=25, width=3)
    return np.asarray(pil.filter(ImageFilter.GaussianBlur(0.7)))


def paint_blowhole(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    cy, cx = rng.integers(70, 150, size=2)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 11.0**2
    out = out * (1 - 0.85 * np.exp(-r2 * 1.5))
    return np.clip(out, 0, 255).astype(np.uint8)


def paint_stain(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    cy, cx = rng.integers(60, 160, size=2)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    r2 = (yy - cy) ** 2 / 30.0**2 + (xx - cx) ** 2 / 18.0**2
    out = out + 95 * np.exp(-r2 * 2.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(7)
    texture = data.brick()  # 512 x 512, uint8, CC0
    references = crops(texture, [(0, 0), (140, 0), (280, 0), (0, 140), (140, 140), (280, 140)])
    normals = crops(texture, [(40, 288), (288, 288), (160, 260)])
    defect_bases = crops(texture, [(0, 288), (220, 288), (100, 250)])
    defects = {
        "crack": paint_crack(defect_bases[0], rng),
        "blowhole": paint_blowhole(defect_bases[1], rng),
        "stain": paint_stain(defect_bases[2], rng),
    }
    (OUT / "references").mkdir(parents=True, exist_ok=True)
    (OUT / "cases").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(references, 1):
        Image.fromarray(img).save(OUT / "references" / f"normal_reference_{i}.png", optimize=True)
    for i, img in enumerate(normals, 1):
        Image.fromarray(img).save(OUT / "cases" / f"panel_{i:02d}_normal.png", optimize=True)
    for i, (kind, img) in enumerate(defects.items(), len(normals) + 1):
        Image.fromarray(img).save(OUT / "cases" / f"panel_{i:02d}_{kind}.png", optimize=True)


if __name__ == "__main__":
    main()
