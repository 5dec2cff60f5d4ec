"""Benchmark the built-in offline detector on the real data in ../shared/data.

Protocol (deterministic):

* magnetic_tile: the MT_Free file names are sorted and permuted with numpy's
  ``default_rng(seed)`` (seed 0 by default); the first 16 are the references, the next 200 the
  normal test images; all 392 images of MT_Blowhole/Break/Crack/Fray/Uneven are the defects.
  Pixel AUROC compares the heat maps with the masks (``<stem>.png``; normals count as all
  background), on every second pixel in each direction to bound memory.
* brain_mri: the same with ``no/`` (16 references, the other 82 normal) and all of ``yes/``;
  image AUROC only (no masks). Files are loaded with PIL ``convert("RGB")``.

Run: ``.venv/bin/python benchmarks/offline_detector.py [--data DIR] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inspector.metrics import auroc  # noqa: E402

TILE_DEFECTS = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
ANOMALIB_TILE = "anomalib 2.x, same weights: PatchCore 0.785 image / 0.758 pixel, PaDiM 0.815 / 0.734"


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_mask(image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask_path = image_path.with_suffix(".png")
    if not mask_path.exists():
        return np.zeros(shape, bool)
    with Image.open(mask_path) as im:
        return np.asarray(im.convert("L")) > 127


def choose(files: list[Path], n_refs: int, n_test: int | None, seed: int) -> tuple[list[Path], list[Path]]:
    """References and normal test images: sorted names, one seeded permutation."""
    files = sorted(files)
    order = np.random.default_rng(seed).permutation(len(files))
    picked = [files[i] for i in order]
    rest = picked[n_refs:]
    return picked[:n_refs], rest if n_test is None else rest[:n_test]


def images_in(folder: Path, suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)


def run(
    name: str, refs: list[Path], normals: list[Path], anomalies: list[Path], with_masks: bool, image_size: int
) -> None:
    from inspector.detector.offline import OfflineDetector

    print(f"\n== {name}: {len(refs)} references, {len(normals)} normal + {len(anomalies)} anomalous test images")
    det = OfflineDetector(image_size=image_size)
    ref_images = [load_rgb(p) for p in refs]
    t0 = time.perf_counter()
    det.fit(ref_images)
    fit_s = time.perf_counter() - t0
    cal = det.calibration
    assert cal is not None
    print(
        f"fit: {fit_s:.2f} s  (threshold {cal.threshold:.3f}, leave-one-out mean "
        f"{cal.loo_scores.mean():.3f}, spread {cal.spread:.3f})"
    )

    scores, raws, labels, groups = [], [], [], []
    pix_scores, pix_labels = [], []
    times: list[float] = []
    for label, paths in ((0, normals), (1, anomalies)):
        for p in paths:
            image = load_rgb(p)
            t0 = time.perf_counter()
            res = det.score(image)
            times.append(time.perf_counter() - t0)
            scores.append(res.score)
            raws.append(res.raw_score)
            labels.append(label)
            groups.append(p.parent.parent.name if with_masks else p.parent.name)
            if with_masks:
                mask = load_mask(p, image.shape[:2]) if label else np.zeros(image.shape[:2], bool)
                pix_scores.append(res.heatmap[::2, ::2].ravel())
                pix_labels.append(mask[::2, ::2].ravel())
    n = len(labels)
    raws_a, labels_a, scores_a = np.array(raws), np.array(labels, bool), np.array(scores)
    print(
        f"score: {np.mean(times) * 1000:.0f} ms per image mean, {np.median(times) * 1000:.0f} ms median "
        f"(over {n}; the median resists other processes competing for the cores)"
    )
    print(f"image AUROC: {auroc(raws_a, labels_a):.4f}")
    if with_masks:
        print(f"pixel AUROC: {auroc(np.concatenate(pix_scores), np.concatenate(pix_labels)):.4f}")
        per_class = []
        for cls in sorted(set(g for g, lab in zip(groups, labels, strict=True) if lab)):
            sel = np.array([(not lab) or g == cls for g, lab in zip(groups, labels, strict=True)])
            per_class.append(f"{cls.removeprefix('MT_')} {auroc(raws_a[sel], labels_a[sel]):.3f}")
        print("per class (vs. all normals): " + ", ".join(per_class))
    flagged = scores_a >= 0.5
    print(
        f"at score >= 0.5: false-positive rate {flagged[~labels_a].mean():.3f}, "
        f"true-positive rate {flagged[labels_a].mean():.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding magnetic_tile/ and brain_mri/ (default: <repo>/../shared/data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="permutation seed for choosing references")
    parser.add_argument("--refs", type=int, default=16, help="number of normal references")
    parser.add_argument("--normals", type=int, default=200, help="magnetic_tile normal test images")
    parser.add_argument("--image-size", type=int, default=256, help="OfflineDetector(image_size=...)")
    parser.add_argument("--only", choices=("magnetic_tile", "brain_mri"), help="run one data set")
    args = parser.parse_args(argv)

    tile, brain = args.data / "magnetic_tile", args.data / "brain_mri"
    if not tile.is_dir() and not brain.is_dir():
        print(
            f"error: no benchmark data at {args.data} (expected magnetic_tile/ and brain_mri/); pass --data DIR",
            file=sys.stderr,
        )
        return 2

    import torch

    from inspector.detector.efficientnet_lite import get_model

    t0 = time.perf_counter()
    get_model()
    print(
        f"model load: {time.perf_counter() - t0:.2f} s  (torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )

    if tile.is_dir() and args.only in (None, "magnetic_tile"):
        jpg = {".jpg"}  # the .png beside each image is its mask
        refs, normals = choose(images_in(tile / "MT_Free" / "Imgs", jpg), args.refs, args.normals, args.seed)
        defects = [p for cls in TILE_DEFECTS for p in images_in(tile / cls / "Imgs", jpg)]
        run("magnetic_tile", refs, normals, defects, with_masks=True, image_size=args.image_size)
        print(f"for comparison: {ANOMALIB_TILE}")
    if brain.is_dir() and args.only in (None, "brain_mri"):
        refs, normals = choose(images_in(brain / "no"), args.refs, None, args.seed)
        run("brain_mri", refs, normals, images_in(brain / "yes"), with_masks=False, image_size=args.image_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
