"""The built-in offline detector: weights, ImageNet sanity, synthetic defects, real tiles.

Synthetic fixtures use scikit-image's bundled CC0 images (``chelsea``, ``coffee``, ``brick``).
The real-data test reads magnetic tiles from ``../shared/data`` and skips where it is absent.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata

from inspector.detector import efficientnet_lite as enet
from inspector.detector.offline import (
    CancelledError,
    DetectorParams,
    DetectorResult,
    OfflineDetector,
    classify_imagenet,
    fit_cache_key,
)
from inspector.detector.regions import heatmap_regions
from inspector.metrics import auroc
from inspector.model import Region

CROP = 128


# ---------------------------------------------------------------------------- the network


def test_weights_load_with_strict_keys():
    state = torch.load(enet.weights_path(), map_location="cpu", weights_only=True)
    model = enet.build_model()  # load_state_dict(strict=True) inside
    assert set(model.state_dict()) == set(state)
    assert model._blocks[0].has_expand is False and len(model._blocks) == 16
    broken = dict(state)
    broken.pop("_fc.bias")
    with pytest.raises(RuntimeError):
        enet.EfficientNetLite0().load_state_dict(broken, strict=True)


def test_feature_taps_have_the_documented_strides():
    model = enet.get_model()
    with torch.inference_mode():
        feats = model.features(torch.rand(1, 3, 256, 192), {**enet.FEATURE_TAPS, **enet.STRIDE32_TAP})
    assert feats["stride8"].shape == (1, 40, 32, 24)
    assert feats["stride16"].shape == (1, 112, 16, 12)
    assert feats["stride32"].shape == (1, 192, 8, 6)


def test_folded_batchnorm_matches_the_plain_model():
    plain, fused = enet.build_model(), enet.get_model()
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        assert torch.allclose(plain(x), fused(x), atol=1e-3)


def test_imagenet_cat_photo_is_a_cat():
    top5 = [name for name, _ in classify_imagenet(skdata.chelsea(), top_k=5)]
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(top5), top5


def test_imagenet_coffee_photo_is_coffee():
    top5 = classify_imagenet(skdata.coffee(), top_k=5)
    names = [name for name, _ in top5]
    assert {"espresso", "cup", "coffee mug"} & set(names), names
    probs = [p for _, p in top5]
    assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-6


def test_to_tensor_handles_gray_rgba_uint16_and_float():
    gray = np.full((8, 9), 128, np.uint8)
    assert enet.to_tensor(gray).shape == (1, 3, 8, 9)
    rgba = np.zeros((8, 9, 4), np.uint8)
    assert enet.to_tensor(rgba).shape == (1, 3, 8, 9)
    twelve_bit = np.full((4, 4), 4095, np.uint16)
    assert float(enet.to_tensor(twelve_bit).max()) == pytest.approx(1.0)
    floats = np.linspace(0, 255, 16, dtype=np.float32).reshape(4, 4)
    t = enet.to_tensor(floats)
    assert float(t.min()) == 0.0 and float(t.max()) == pytest.approx(1.0)


# ------------------------------------------------------------------- synthetic defects


def _brick_crops() -> tuple[list[np.ndarray], np.ndarray]:
    """Four reference crops from the left half of skimage's brick wall, one unseen from the right."""
    wall = skdata.brick()  # 512 x 512 gray uint8, CC0
    refs = [wall[y : y + CROP, x : x + CROP].copy() for y, x in ((0, 0), (0, 120), (200, 40), (380, 110))]
    unseen = wall[300 : 300 + CROP, 330 : 330 + CROP].copy()
    return refs, unseen


def _scratched(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image with a dark diagonal scratch painted on, and the scratch mask."""
    out = image.copy()
    mask = np.zeros(image.shape[:2], bool)
    for t in np.linspace(0.0, 1.0, 400):
        y, x = int(30 + 50 * t), int(25 + 60 * t)
        mask[y - 2 : y + 3, x - 2 : x + 3] = True
    out[mask] = 15
    return out, mask


@pytest.fixture(scope="module")
def brick_detector() -> OfflineDetector:
    refs, _ = _brick_crops()
    det = OfflineDetector()
    det.fit(refs)
    return det


def test_scratch_scores_higher_than_unseen_normal(brick_detector):
    refs, unseen = _brick_crops()
    defective, mask = _scratched(refs[0])
    bad = brick_detector.score(defective)
    good = brick_detector.score(unseen)
    assert bad.raw_score > good.raw_score
    assert bad.score > good.score
    assert bad.anomalous and not good.anomalous, (bad.score, good.score)
    # The heat map peak lies on the scratch (the feature grid is 16 px of this crop: allow that).
    py, px = np.unravel_index(np.argmax(bad.heatmap), bad.heatmap.shape)
    ys, xs = np.nonzero(mask)
    assert ys.min() - 16 <= py <= ys.max() + 16 and xs.min() - 16 <= px <= xs.max() + 16
    top = bad.regions[0]
    assert top.x0 <= xs.mean() <= top.x1 and top.y0 <= ys.mean() <= top.y1
    assert "no VLM asked" in bad.explanation


def test_result_shapes_types_and_ranges(brick_detector):
    _, unseen = _brick_crops()
    rgb = np.stack([unseen[:100, :90]] * 3, axis=-1)
    for image in (rgb, rgb[..., 0], rgb.astype(np.uint16) * 256, rgb.astype(np.float32) / 255.0):
        res = brick_detector.score(image)
        assert isinstance(res, DetectorResult)
        assert res.heatmap.shape == (100, 90) and res.heatmap.dtype == np.float32
        assert 0.0 <= float(res.heatmap.min()) and float(res.heatmap.max()) <= 1.0
        assert 0.0 <= res.score <= 1.0 and res.anomalous == (res.score >= 0.5)
        assert np.isfinite(res.raw_score) and np.isfinite(res.threshold)
        assert 1 <= len(res.regions) <= 5
        assert all(isinstance(r, Region) and 0 <= r.x0 < r.x1 <= 90 and 0 <= r.y0 < r.y1 <= 100 for r in res.regions)
        assert [r.score for r in res.regions] == sorted((r.score for r in res.regions), reverse=True)


def test_large_photo_keeps_its_size_in_the_heatmap(brick_detector):
    big = np.tile(skdata.brick(), (3, 4))[:1400, :1900]  # > 2x the network input: shrunk first
    res = brick_detector.score(big)
    assert res.heatmap.shape == big.shape and res.heatmap.dtype == np.float32
    assert all(r.x1 <= 1900 and r.y1 <= 1400 for r in res.regions)


def test_raw_score_at_threshold_calibrates_to_one_half(brick_detector):
    cal = brick_detector.calibration
    assert float(cal.calibrate(cal.threshold)) == pytest.approx(0.5)
    assert float(cal.calibrate(cal.threshold + cal.spread)) > 0.8


def test_fit_needs_a_reference():
    with pytest.raises(ValueError, match="at least one"):
        OfflineDetector().fit([])


def test_fit_can_be_cancelled_and_reports_progress():
    refs, _ = _brick_crops()
    seen: list[float] = []
    det = OfflineDetector()
    with pytest.raises(CancelledError):
        det.fit(refs, progress=seen.append, is_cancelled=lambda: len(seen) >= 2)
    assert not det.fitted and len(seen) == 2
    with pytest.raises(CancelledError):
        OfflineDetector().fit(refs, is_cancelled=lambda: True)
    with pytest.raises(RuntimeError, match="not fitted"):
        det.score(refs[0])


def test_single_reference_is_enough_and_state_round_trips(brick_detector, tmp_path):
    refs, unseen = _brick_crops()
    one = OfflineDetector()
    progress: list[float] = []
    one.fit(refs[:1], progress=progress.append)
    assert one.fitted and progress[-1] == pytest.approx(1.0)
    assert progress == sorted(progress)
    res = one.score(unseen)
    assert np.isfinite(res.threshold) and 0.0 <= res.score <= 1.0
    np.savez(tmp_path / "fitted.npz", **brick_detector.state())
    with np.load(tmp_path / "fitted.npz") as cached:
        restored = OfflineDetector.from_state(cached)
    a, b = brick_detector.score(unseen), restored.score(unseen)
    assert a.raw_score == pytest.approx(b.raw_score, rel=1e-5) and a.score == pytest.approx(b.score, abs=1e-6)
    # The localisation bank and the heat map's own calibration travel too.
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
    assert restored.map_calibration.threshold == pytest.approx(brick_detector.map_calibration.threshold)
    older = dict(brick_detector.state(), version="offline-1")
    with pytest.raises(ValueError, match="another detector version"):
        OfflineDetector.from_state(older)


def test_deep_only_heatmap_state_round_trips(tmp_path):
    refs, unseen = _brick_crops()
    det = OfflineDetector(loc_block=None)
    det.fit(refs)
    assert det.map_calibration is det.calibration  # offline-1 behaviour: the calibrated scoring map
    state = det.state()
    assert "bankloc_features" not in state
    restored = OfflineDetector.from_state(state)
    np.testing.assert_allclose(det.score(unseen).heatmap, restored.score(unseen).heatmap, atol=1e-5)


def test_localisation_map_follows_the_scratch_closer_than_the_deep_map(brick_detector):
    """The stride-16 branch must sharpen the heat map without touching the image score."""
    refs, _ = _brick_crops()
    defective, mask = _scratched(refs[0])
    deep_only = OfflineDetector(loc_block=None)
    deep_only.fit(refs)
    sharp, coarse = brick_detector.score(defective), deep_only.score(defective)
    assert sharp.raw_score == pytest.approx(coarse.raw_score, rel=1e-5)  # same image score
    assert auroc(sharp.heatmap.ravel(), mask.ravel()) > auroc(coarse.heatmap.ravel(), mask.ravel())
    assert sharp.heatmap.max() >= 0.5  # the calibrated map still crosses its threshold on the defect
    contrast = sharp.heatmap[mask].mean() / sharp.heatmap[~mask].mean()
    assert contrast > coarse.heatmap[mask].mean() / coarse.heatmap[~mask].mean()


def test_fit_cache_key_tracks_references_and_params():
    key = fit_cache_key(["aa", "bb"], DetectorParams())
    assert key == fit_cache_key(["aa", "bb"], OfflineDetector())
    assert key != fit_cache_key(["aa", "bc"], DetectorParams())
    assert key != fit_cache_key(["aa", "bb"], DetectorParams(image_size=320))
    assert key != fit_cache_key(["aa", "bb"], DetectorParams(loc_block=None))
    assert key != fit_cache_key(["aa", "bb"], DetectorParams(loc_pool=5))
    assert len(key) == 64 and int(key, 16) >= 0


def test_regions_grow_around_a_peak_but_skip_blobs_below_the_threshold():
    heat = np.zeros((40, 60), np.float32)
    heat[10:14, 5:45] = 0.28  # a ridge that reaches the threshold only in its middle
    heat[11:13, 24:27] = 0.8
    heat[30:34, 50:54] = 0.4  # a separate blob that never reaches 0.5
    regions = heatmap_regions(heat)
    assert len(regions) == 1  # the 0.4 blob is dropped while a real candidate exists
    top = regions[0]
    assert (top.x0, top.y0, top.x1, top.y1) == (5, 10, 45, 14) and top.score == pytest.approx(0.8)
    assert top.label == "anomaly candidate"
    # Nothing above 0.5: only the strongest blob (above 0.75 x 0.4 = 0.3; the 0.28 ridge is not).
    weak = heatmap_regions(np.where(heat > 0.5, 0.0, heat))
    assert [(r.x0, r.y0, r.x1, r.y1, r.label) for r in weak] == [(50, 30, 54, 34, "weak candidate")]


# -------------------------------------------------------------------------- real data


def _gray(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def test_magnetic_tile_subset_auroc(shared_data: Path):
    root = shared_data / "magnetic_tile"
    if not root.is_dir():
        pytest.skip(f"magnetic_tile not found under {shared_data}")
    free = sorted(glob.glob(str(root / "MT_Free" / "Imgs" / "*.jpg")))
    order = np.random.default_rng(0).permutation(len(free))
    refs = [free[i] for i in order[:4]]
    normals = [free[i] for i in order[4:14]]
    defects = []
    for cls in ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"):
        defects += sorted(glob.glob(str(root / cls / "Imgs" / "*.jpg")))[:2]
    det = OfflineDetector()
    det.fit([_gray(p) for p in refs])
    scores = [det.score(_gray(p)).raw_score for p in normals + defects]
    labels = [0] * len(normals) + [1] * len(defects)
    assert auroc(scores, labels) > 0.7


def _clip_frames(seed: int, count: int) -> list[np.ndarray]:
    """Frames of one still "video": the same scene with a little sensor noise each."""
    from tests.conftest import textured_image

    base = textured_image(seed, (96, 96)).astype(int)
    rng = np.random.default_rng(seed + 100)
    return [np.clip(base + rng.normal(0, 1, base.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def test_calibration_holds_out_whole_sources_not_their_near_identical_frames():
    """Frames of one video are near-copies: leave-one-frame-out calibrates normal as "identical"
    and flags any new normal video; leaving out the whole video measures real normal variation."""
    refs, sources = [], []
    for video in (1, 2, 3):
        frames = _clip_frames(video, 2)
        refs += frames
        sources += [f"video {video}"] * len(frames)
    new_normal = _clip_frames(7, 1)[0]
    per_frame, per_video = OfflineDetector(), OfflineDetector()
    per_frame.fit(refs)
    per_video.fit(refs, sources=sources)
    assert per_frame.score(new_normal).anomalous  # the failure mode this guards against
    assert not per_video.score(new_normal).anomalous
    assert per_video.calibration.threshold > per_frame.calibration.threshold
