"""The built-in offline anomaly detector: reference comparison on pretrained features.

When no VLM endpoint is set (air-gapped shop floors, hospitals) this still scores a case, draws
a heat map and proposes regions, from the profile's normal reference images alone.

Method (PatchCore family, tuned on real magnetic-tile data, see benchmarks/offline_detector.py):

1. Each image is resized to a square at two scales (``image_size`` and 1.25x, i.e. 256 and 320
   px). Square resizing maps every crop to the same canonical frame; on the irregular tile
   crops it beat aspect-preserving and fixed-pixel-scale resizing by 0.05-0.2 AUROC.
2. Features are taken after EfficientNet-Lite0 block 14 (192 channels, stride 32), averaged over
   3x3 neighbourhoods. Deep features won clearly: with 16 references, image AUROC on magnetic
   tiles was ~0.60-0.70 for stride-8/16 taps (alone or concatenated, PatchCore-style) against
   ~0.84 for block 14; surface texture is noisy and the deeper maps ignore it.
3. The memory bank holds the patches of every reference and of its horizontal, vertical and
   double flips (tiles and most parts have no canonical orientation).
4. A test patch scores its density-adjusted nearest-neighbour distance (``bank.PatchBank``):
   distance to the nearest reference patch minus half that patch's own distance to the other
   references, so naturally variable areas do not fire.
5. Test-time augmentation: the four flips of the test image are scored and their maps, flipped
   back, averaged. Each scale's map is divided by that scale's typical normal score; the scales'
   maps are averaged on a common grid. The image's raw score is the maximum of that map.

Calibration (why the 0..1 score means something with 1-16 references): every reference is
scored, exactly as a test image would be, against the bank of the *other* references
(leave-one-out, "loo"). These n raw scores are samples of "how a normal image scores", and since
each scale's map is divided by its mean loo score, raw scores are relative (normal ~ 1.0)::

    spread    = max(std(loo), 0.2)                      # floor: loo std underestimates with few refs
    threshold = mean(loo) + 2 * spread * sqrt(1 + 1/n)  # raw score at which score == 0.5
    score     = sigmoid(2 * (raw - threshold) / spread)

sqrt(1 + 1/n) widens the interval because the mean itself is estimated from n samples. The heat
map uses the same mapping per pixel, so 0.5 on the map is the same threshold. Measured on
magnetic tiles (5 random reference draws x n in {1, 2, 4, 8, 16}): normals crossed the
threshold in <= 5 % of cases for 21 of the 25 draws (worst 22 %, one n=4 draw). Special cases:
the radius term (step 4) is used only with >= 3 references, otherwise leave-one-out would see a
different score than test images do; a single reference is cut into two halves along its long
side and each half is scored against the other (a rougher approximation: normals then cross the
threshold in 0-5 % of the draws, and fewer defects are caught).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as nnf

from inspector.detector.bank import PatchBank
from inspector.detector.efficientnet_lite import get_model, to_tensor, weights_path
from inspector.detector.imagenet import classify_imagenet
from inspector.detector.regions import heatmap_regions
from inspector.model import Region

__all__ = [
    "Calibration", "CancelledError", "DetectorParams", "DetectorResult", "OfflineDetector",
    "classify_imagenet", "fit_cache_key",
]

DETECTOR_VERSION = "offline-1"

# Flip dims for the identity, horizontal, vertical and double flip (their own inverses).
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-1, -2))


class CancelledError(Exception):
    """Raised by `OfflineDetector.fit` when ``is_cancelled()`` returned True."""


@dataclass(frozen=True)
class DetectorParams:
    """Everything that changes what a fitted detector computes (part of the cache key)."""

    image_size: int = 256
    scales: tuple[float, ...] = (1.0, 1.25)
    block: int = 14
    pool: int = 3
    alpha: float = 0.5
    flip_bank: bool = True
    flip_test: bool = True
    threshold_spreads: float = 2.0
    min_spread: float = 0.2
    max_bank: int = 16384

    def sizes(self) -> list[int]:
        """Square input sizes, multiples of 32 so that the stride-32 grid is exact."""
        return [max(64, round(self.image_size * s / 32.0) * 32) for s in self.scales]


@dataclass
class DetectorResult:
    """One scored image: calibrated score, heat map, candidate regions and a sentence for humans."""

    score: float  # calibrated, 0..1, >= 0.5 means anomalous
    raw_score: float  # uncalibrated image score (max of the fused relative-distance map)
    threshold: float  # raw score at which score == 0.5
    heatmap: np.ndarray  # float32 HxW in [0,1], same H,W as the input image
    regions: list[Region]  # top candidate regions (input-image pixels), at most 5, strongest first
    anomalous: bool
    explanation: str


@dataclass
class Calibration:
    """What fitting learnt about normal scores (see the module docstring for the rule)."""

    scale_norm: list[float]  # per scale: mean leave-one-out image score (divides that scale's map)
    loo_scores: np.ndarray  # fused leave-one-out raw scores
    threshold: float
    spread: float

    def calibrate(self, raw: np.ndarray | float) -> np.ndarray:
        z = 2.0 * (np.asarray(raw, dtype=np.float64) - self.threshold) / self.spread
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


@dataclass
class _Fitted:
    banks: list[PatchBank]
    calibration: Calibration
    n_references: int


def _to_unit_tensor(image: np.ndarray, max_side: int) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]; 8-bit images larger than `max_side` are first shrunk (box filter).

    The network sees at most 320 px, so a 24-megapixel photo need not become a 290 MB float
    tensor first; shrinking with a box filter before the antialiased resize changes nothing
    that matters.
    """
    arr = np.asarray(image)
    if arr.size == 0 or arr.ndim < 2 or min(arr.shape[:2]) < 2:
        raise ValueError(f"not a usable image: shape {arr.shape}")
    h, w = arr.shape[:2]
    if arr.dtype == np.uint8 and max(h, w) > max_side:
        from PIL import Image

        f = max_side / max(h, w)
        size = (max(2, round(w * f)), max(2, round(h * f)))
        squeezed = arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
        if squeezed.ndim == 3 and squeezed.shape[2] == 4:
            squeezed = squeezed[..., :3]
        arr = np.asarray(Image.fromarray(np.ascontiguousarray(squeezed)).resize(size, Image.Resampling.BOX))
    return to_tensor(arr)


def _source_groups(sources: Sequence[str] | None, n: int) -> list[int]:
    """Group index per reference: by source when there are >= 2 sources, else one group each."""
    if sources is None or len(sources) != n or len(set(sources)) < 2:
        return list(range(n))
    index: dict[str, int] = {}
    return [index.setdefault(source, len(index)) for source in sources]


class OfflineDetector:
    """Reference-comparison anomaly detector (see the module docstring for method and calibration).

    Usage: ``det = OfflineDetector(); det.fit(references); result = det.score(image)``. Fitting
    16 references takes a few seconds on two CPU cores and scoring ~0.3 s per image; both run
    off the GUI thread. `fit` swaps its state in at the end, so a detector being refitted keeps
    scoring with its previous state until then.
    """

    def __init__(self, image_size: int = 256, *, params: DetectorParams | None = None,
                 **overrides: Any) -> None:
        base = params or DetectorParams()
        self.params = dataclasses.replace(base, image_size=image_size, **overrides)
        self._fitted: _Fitted | None = None

    @property
    def _max_side(self) -> int:
        return 2 * max(self.params.sizes())

    @property
    def fitted(self) -> bool:
        return self._fitted is not None

    @property
    def calibration(self) -> Calibration | None:
        """Threshold, spread and leave-one-out scores of the fitted detector (None before fit)."""
        return self._fitted.calibration if self._fitted else None

    @property
    def n_references(self) -> int:
        return self._fitted.n_references if self._fitted else 0

    # ----------------------------------------------------------------- features

    def _embed(self, x: torch.Tensor, size: int, flips: Sequence[tuple[int, ...]]) -> torch.Tensor:
        """(len(flips), C, h, w) pooled features of the flipped square-resized image."""
        sq = nnf.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        batch = torch.cat([sq.flip(f) if f else sq for f in flips])
        with torch.inference_mode():
            fmap = get_model().features(batch, {"tap": self.params.block})["tap"]
            if self.params.pool > 1:
                p = self.params.pool
                fmap = nnf.avg_pool2d(fmap, p, stride=1, padding=p // 2, count_include_pad=False)
        return fmap

    def _flip_map(self, emb: torch.Tensor, bank: PatchBank, flips: Sequence[tuple[int, ...]],
                  exclude: int | None = None) -> torch.Tensor:
        """Distance map (h, w) averaged over the flipped views, each flipped back."""
        n, c, h, w = emb.shape
        # The radius term needs >= 3 references: with 2, leave-one-out would see a bank without
        # radii and calibrate against a different score than the test images get.
        alpha = self.params.alpha if bank.n_groups >= 3 else 0.0
        d = bank.distances(emb.permute(0, 2, 3, 1).reshape(-1, c), alpha, exclude)
        d = d.reshape(n, h, w)
        return torch.stack([d[i].flip(f) if f else d[i] for i, f in enumerate(flips)]).mean(0)

    def _fuse(self, maps: Sequence[torch.Tensor], norms: Sequence[float]) -> torch.Tensor:
        """Average of the per-scale maps, each divided by its normal level, on the finest grid."""
        grid = max((m.shape for m in maps), key=lambda s: s[0] * s[1])
        fused = torch.zeros(grid)
        for m, norm in zip(maps, norms, strict=True):
            m = m / norm
            if m.shape != grid:
                m = nnf.interpolate(m[None, None], size=grid, mode="bilinear", align_corners=False)[0, 0]
            fused += m
        return fused / len(maps)

    # ---------------------------------------------------------------------- fit

    def fit(self, references: Sequence[np.ndarray], progress: Callable[[float], None] | None = None,
            is_cancelled: Callable[[], bool] | None = None, sources: Sequence[str] | None = None) -> None:
        """Build the memory bank and the calibration from >= 1 normal reference images.

        References are RGB or gray arrays of any size (uint8; uint16/float are scaled). Raises
        ValueError for no references, CancelledError when ``is_cancelled()`` turns True.

        `sources` names where each reference came from. Frames of one video (or slices of one
        series) are near-copies of each other: holding out one frame while its neighbours stay in
        the bank would calibrate "normal" as "almost identical" and flag every new normal clip. So
        with two or more sources, leave-one-out holds out a whole source; with one, single images.
        """
        refs = list(references)
        group_of = _source_groups(sources, len(refs))
        if not refs:
            raise ValueError("the offline detector needs at least one normal reference image to compare "
                             "against; the profile has none")
        tensors = [_to_unit_tensor(r, self._max_side) for r in refs]
        p = self.params
        sizes = p.sizes()
        bank_flips = _FLIPS if p.flip_bank else _FLIPS[:1]
        single = len(tensors) == 1
        # Units are what leave-one-out holds out: the references, or the halves of a lone one.
        units = _halves(tensors[0]) if single else tensors
        steps = len(sizes) * (len(tensors) + (len(units) if single else 0)) + 1
        done = 0

        def tick() -> None:
            nonlocal done
            if is_cancelled is not None and is_cancelled():
                raise CancelledError("fitting the offline detector was cancelled")
            done += 1
            if progress is not None:
                progress(min(1.0, done / steps))

        if is_cancelled is not None and is_cancelled():
            raise CancelledError("fitting the offline detector was cancelled")
        banks: list[PatchBank] = []
        unit_embs: list[list[torch.Tensor]] = []  # [scale][unit] -> (flips, C, h, w)
        calib_banks: list[PatchBank] = []
        for size in sizes:
            embs = []
            for t in tensors:
                embs.append(self._embed(t, size, bank_flips))
                tick()
            bank = self._make_bank(embs, None if single else group_of)
            banks.append(bank)
            if single:
                half_embs = []
                for t in units:
                    half_embs.append(self._embed(t, size, bank_flips))
                    tick()
                calib_banks.append(self._make_bank(half_embs))
                unit_embs.append(half_embs)
            else:
                calib_banks.append(bank)
                unit_embs.append(embs)
        calibration = self._calibrate(calib_banks, unit_embs, bank_flips, max(group_of) + 1,
                                      None if single else group_of)
        tick()
        self._fitted = _Fitted(banks, calibration, len(tensors))  # one atomic swap

    def _make_bank(self, embs: Sequence[torch.Tensor], group_of: Sequence[int] | None = None) -> PatchBank:
        """Patch features grouped by source (`group_of[i]` for embedding i; default: one group each)."""
        group_of = list(group_of) if group_of is not None else list(range(len(embs)))
        feats, groups = [], []
        for i, e in enumerate(embs):
            rows = e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
            feats.append(rows)
            groups.append(torch.full((rows.shape[0],), group_of[i], dtype=torch.long))
        x, gr = torch.cat(feats), torch.cat(groups)
        if x.shape[0] > self.params.max_bank:  # many references: a fixed random subset
            keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
            keep = keep[: self.params.max_bank].sort().values
            x, gr = x[keep], gr[keep]
        return PatchBank(x, gr, max(group_of) + 1)

    def _calibrate(self, banks: Sequence[PatchBank], unit_embs: Sequence[Sequence[torch.Tensor]],
                   flips: Sequence[tuple[int, ...]], n_references: int,
                   group_of: Sequence[int] | None = None) -> Calibration:
        n_units = len(unit_embs[0])
        held_out = list(group_of) if group_of is not None else list(range(n_units))
        maps = [[self._flip_map(unit_embs[s][u], banks[s], flips, exclude=held_out[u]) for u in range(n_units)]
                for s in range(len(banks))]
        norms = []
        for s, bank in enumerate(banks):
            level = float(np.mean([float(m.max()) for m in maps[s]]))
            floor = 0.05 * float(bank.features.norm(dim=1).median())  # identical references
            norms.append(max(level, floor, 1e-6))
        loo = np.array([float(self._fuse([maps[s][u] for s in range(len(banks))], norms).max())
                        for u in range(n_units)])
        std = float(loo.std(ddof=1)) if loo.size > 1 else 0.0
        spread = max(std, self.params.min_spread)
        # sqrt(1 + 1/n): a new normal image varies around a mean that is itself estimated from n.
        widen = math.sqrt(1.0 + 1.0 / n_references)
        threshold = float(loo.mean()) + self.params.threshold_spreads * spread * widen
        return Calibration(norms, loo, threshold, spread)

    # -------------------------------------------------------------------- score

    def score(self, image: np.ndarray) -> DetectorResult:
        """Score one image (RGB or gray, any size) against the fitted references."""
        fitted = self._fitted
        if fitted is None:
            raise RuntimeError("the offline detector is not fitted: call fit(references) first")
        h, w = np.asarray(image).shape[:2]
        x = _to_unit_tensor(image, self._max_side)
        flips = _FLIPS if self.params.flip_test else _FLIPS[:1]
        maps = [self._flip_map(self._embed(x, size, flips), bank, flips)
                for size, bank in zip(self.params.sizes(), fitted.banks, strict=True)]
        cal = fitted.calibration
        fused = self._fuse(maps, cal.scale_norm)
        raw = float(fused.max())
        full = nnf.interpolate(fused[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        heatmap = cal.calibrate(full.numpy()).astype(np.float32)
        score = float(cal.calibrate(raw))
        regions = heatmap_regions(heatmap)
        py, px = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        anomalous = score >= 0.5
        return DetectorResult(score=score, raw_score=raw, threshold=cal.threshold, heatmap=heatmap,
                              regions=regions, anomalous=anomalous,
                              explanation=_explain(score, raw, cal.threshold, anomalous,
                                                   fitted.n_references, (int(px), int(py))))

    # --------------------------------------------------------------- persistence

    def state(self) -> dict[str, Any]:
        """The fitted state as plain numpy/JSON values (for a cache file; see `from_state`)."""
        if self._fitted is None:
            raise RuntimeError("the offline detector is not fitted")
        f = self._fitted
        out: dict[str, Any] = {
            "version": DETECTOR_VERSION,
            "params": json.dumps(_params_dict(self.params)),
            "n_references": f.n_references,
            "scale_norm": np.array(f.calibration.scale_norm),
            "loo_scores": f.calibration.loo_scores,
            "threshold": f.calibration.threshold,
            "spread": f.calibration.spread,
        }
        for i, b in enumerate(f.banks):
            out[f"bank{i}_features"] = b.features.numpy()
            out[f"bank{i}_groups"] = b.groups.numpy()
            out[f"bank{i}_n_groups"] = b.n_groups
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OfflineDetector:
        """Rebuild a fitted detector from `state()` output (e.g. ``np.load(path)``)."""
        if str(np.asarray(state["version"])) != DETECTOR_VERSION:
            raise ValueError("cached detector state is from another detector version; refit")
        raw = json.loads(str(np.asarray(state["params"])))
        raw["scales"] = tuple(raw["scales"])
        params = DetectorParams(**raw)
        det = cls(params.image_size, params=params)
        banks = []
        for i in range(len(params.scales)):
            banks.append(PatchBank(torch.from_numpy(np.asarray(state[f"bank{i}_features"])),
                                   torch.from_numpy(np.asarray(state[f"bank{i}_groups"])),
                                   int(np.asarray(state[f"bank{i}_n_groups"]))))
        cal = Calibration([float(v) for v in np.asarray(state["scale_norm"])],
                           np.asarray(state["loo_scores"], dtype=np.float64),
                           float(np.asarray(state["threshold"])), float(np.asarray(state["spread"])))
        det._fitted = _Fitted(banks, cal, int(np.asarray(state["n_references"])))
        return det


def _halves(x: torch.Tensor) -> list[torch.Tensor]:
    """The two halves of an image along its longer side (calibration with one reference)."""
    h, w = x.shape[-2:]
    if h >= w:
        return [x[..., : h // 2, :], x[..., h // 2 :, :]]
    return [x[..., : w // 2], x[..., w // 2 :]]


def _explain(score: float, raw: float, threshold: float, anomalous: bool, n_refs: int,
             peak_xy: tuple[int, int]) -> str:
    refs = f"{n_refs} normal reference{'s' if n_refs != 1 else ''}"
    if anomalous:
        verdict = f"anomalous: it deviates from the {refs} more than they deviate from each other"
    else:
        verdict = f"looks normal compared with the {refs}"
    return (f"Offline detector (no VLM asked): score {score:.2f} ({verdict}; raw {raw:.2f}, "
            f"threshold {threshold:.2f}). Strongest deviation near (x={peak_xy[0]}, y={peak_xy[1]}).")


def _params_dict(params: DetectorParams) -> dict[str, Any]:
    d = dataclasses.asdict(params)
    d["scales"] = list(d["scales"])
    return d


def fit_cache_key(reference_hashes: Sequence[str],
                  params: DetectorParams | OfflineDetector | Mapping[str, Any] | None = None) -> str:
    """A stable hex key for "this detector fitted on these references" (for caching fitted states).

    It covers the reference content hashes in the order given to `fit`, every parameter, the
    detector version and the weights file name, so a change in any of them misses the cache.
    """
    if isinstance(params, OfflineDetector):
        params = params.params
    if params is None:
        params = DetectorParams()
    pd = _params_dict(params) if isinstance(params, DetectorParams) else dict(params)
    payload = {
        "version": DETECTOR_VERSION,
        "weights": weights_path().name,
        "params": pd,
        "references": [str(h) for h in reference_hashes],
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()

