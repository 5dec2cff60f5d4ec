"""SAM proposals without a real checkpoint: a tiny random SAM through the real generator, and loading errors.

No SAM checkpoint exists on the test machines (and none is ever downloaded), so the generator path
is exercised with `tiny_sam` (random weights, meaningless masks) and the loading path with state
dicts saved here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from inspector.localization.proposals import ProposalCancelledError, RefineParams, mask_iou
from inspector.localization.sam import (
    SAM_CHECKPOINTS,
    SamProposals,
    SamUnavailableError,
    _load_checkpoint,
    clear_sam_cache,
    load_sam,
    remove_small_regions,
    tiny_sam,
)

segment_anything = pytest.importorskip("segment_anything")

# random masks are noise spread over the whole image: every box is the full image, so the
# generator's box NMS must be off (1.0) and refine must accept any area, or one mask survives
LOOSE = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
KEEP_ALL = RefineParams(min_area_frac=0.0, max_area_frac=1.0, merge_iou=0.95, max_count=50)


def scene(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([(xx * 2) % 256, (yy * 3) % 256, ((xx + yy) * 2) % 256], axis=2).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model's ops are too small to share: with 2 threads on a busy 2-core machine they
    spin-wait on each other (8 s instead of 0.3 s for one generator run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return tiny_sam()


def assert_checkpoint_help(message: str) -> None:
    for name in SAM_CHECKPOINTS.values():
        assert name in message
    assert "dl.fbaipublicfiles.com/segment_anything" in message and "Settings" in message


def test_tiny_sam_through_the_automatic_mask_generator(tiny):
    img = scene()
    props = SamProposals(tiny, refine=KEEP_ALL, **LOOSE).propose(img)
    assert len(props) >= 2
    for p in props:
        assert p.mask.shape == (64, 96) and p.mask.dtype == bool and p.mask.any()
        assert p.source == "sam" and 0.0 <= p.score <= 1.0
    scores = [p.score for p in props]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.0  # the logit gain in tiny_sam gives non-zero stability scores
    for i, a in enumerate(props):  # refine's merge threshold held
        for b in props[i + 1 :]:
            assert mask_iou(a.mask, b.mask) < 0.95
    # default refine keeps at most 12 and nothing above 60 % of the image
    capped = SamProposals(tiny, **LOOSE).propose(img)
    assert len(capped) <= 12 and all(p.area <= 0.6 * img.shape[0] * img.shape[1] for p in capped)


def test_tiny_sam_is_deterministic_and_accepts_gray(tiny):
    gray = scene()[:, :, 0]
    few = {**LOOSE, "points_per_side": 3}
    a = SamProposals(tiny, refine=KEEP_ALL, **few).propose(gray)
    b = SamProposals(tiny_sam(), refine=KEEP_ALL, **few).propose(gray)
    assert len(a) == len(b) >= 1
    assert all(np.array_equal(p.mask, q.mask) for p, q in zip(a, b, strict=True))
    assert all(p.mask.shape == gray.shape for p in a)


def test_sam_proposals_ranked_by_heatmap(tiny):
    img = scene()
    heat = np.zeros(img.shape[:2], np.float32)
    heat[:, :48] = 1.0
    props = SamProposals(tiny, refine=KEEP_ALL, **{**LOOSE, "points_per_side": 3}).propose(img, heat)
    scores = [p.score for p in props]
    assert scores == sorted(scores, reverse=True)
    for p in props:
        assert p.score == pytest.approx(float(heat[p.mask].mean()), abs=1e-6)


def test_sam_proposals_cancel(tiny):
    with pytest.raises(ProposalCancelledError):
        SamProposals(tiny, is_cancelled=lambda: True, **LOOSE).propose(scene())


def test_remove_small_regions():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[10, 10] = False  # a 1-px hole
    mask[35:37, 35:37] = True  # a 4-px island
    cleaned = remove_small_regions(mask, 10)
    expected = np.zeros((40, 40), bool)
    expected[5:25, 5:25] = True
    assert np.array_equal(cleaned, expected)
    assert np.array_equal(remove_small_regions(mask, 0), mask)


def test_official_vit_b_builds_and_round_trips_through_load_sam(tmp_path):
    """The registry's vit_b builds with random weights (no download) and load_sam reads its state dict."""
    from segment_anything import sam_model_registry

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = sam_model_registry["vit_b"](checkpoint=None)
    assert model.image_encoder.img_size == 1024
    path = tmp_path / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)  # ~375 MB, a fraction of a second to write
    clear_sam_cache()
    try:
        loaded = load_sam("vit_b", path)
        key = "mask_decoder.iou_prediction_head.layers.0.weight"
        assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])
        assert next(loaded.parameters()).device.type == "cpu"
        assert load_sam("vit_b", str(path)) is loaded  # cached
    finally:
        clear_sam_cache()
        path.unlink()


def test_load_sam_missing_file(tmp_path):
    with pytest.raises(SamUnavailableError, match="does not exist") as info:
        load_sam("vit_b", tmp_path / "sam_vit_b_01ec64.pth")
    assert_checkpoint_help(str(info.value))
    with pytest.raises(SamUnavailableError, match="No SAM checkpoint"):
        load_sam("vit_b", "")
    with pytest.raises(SamUnavailableError, match="not a file"):
        load_sam("vit_b", tmp_path)


def test_load_sam_garbage_file(tmp_path):
    path = tmp_path / "sam.pth"
    path.write_bytes(b"<html>404 not found</html>" * 100)
    with pytest.raises(SamUnavailableError, match="could not be read") as info:
        load_sam("vit_b", path)
    assert_checkpoint_help(str(info.value))
    torch.save({"epoch": 3}, path)  # a checkpoint, but not of SAM
    with pytest.raises(SamUnavailableError, match="does not fit") as info:
        load_sam("vit_b", path)
    assert_checkpoint_help(str(info.value))


def test_load_sam_state_dict_of_another_model(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam().state_dict(), path)
    with pytest.raises(SamUnavailableError, match="does not fit model type vit_b") as info:
        load_sam("vit_b", path)
    assert_checkpoint_help(str(info.value))
    # a checkpoint whose encoder width says vit_l, given as vit_b: the message names the right type
    vit_l_like = {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}
    torch.save(vit_l_like, path)
    with pytest.raises(SamUnavailableError, match="looks like a vit_l checkpoint") as info:
        load_sam("vit_b", path)
    assert "sam_vit_l_0b3195.pth" in str(info.value)


def test_load_sam_unknown_model_type(tmp_path):
    with pytest.raises(SamUnavailableError, match="Unknown SAM model type 'vit_x'"):
        load_sam("vit_x", tmp_path / "x.pth")


def test_load_round_trip_and_cache_with_a_tiny_builder(tmp_path, monkeypatch):
    from segment_anything import sam_model_registry

    monkeypatch.setitem(sam_model_registry, "vit_tiny", lambda checkpoint=None: tiny_sam(seed=0))
    trained = tiny_sam(seed=7)
    path = tmp_path / "tiny.pth"
    torch.save(trained.state_dict(), path)
    loaded = _load_checkpoint(lambda checkpoint=None: tiny_sam(seed=0), path, "vit_tiny")
    for (name, a), (_, b) in zip(loaded.state_dict().items(), trained.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    clear_sam_cache()
    try:
        first = load_sam("vit_tiny", path)
        assert load_sam("vit_tiny", path) is first
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was replaced
        second = load_sam("vit_tiny", path)
        assert second is not first
        assert load_sam("vit_tiny", path) is second
        # a wrapped {"model": state_dict} checkpoint is accepted too
        torch.save({"model": trained.state_dict(), "epoch": 1}, tmp_path / "wrapped.pth")
        wrapped = load_sam("vit_tiny", tmp_path / "wrapped.pth")
        key = "image_encoder.pos_embed"
        assert torch.equal(wrapped.state_dict()[key], trained.state_dict()[key])
    finally:
        clear_sam_cache()


def test_make_proposer_builds_sam_from_settings(tmp_path, monkeypatch):
    from segment_anything import sam_model_registry

    from inspector.localization.proposals import make_proposer

    monkeypatch.setitem(sam_model_registry, "vit_tiny", lambda checkpoint=None: tiny_sam(seed=0))
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam(seed=0).state_dict(), path)
    clear_sam_cache()
    try:
        proposer = make_proposer(
            {
                "method": "sam",
                "max_marks": 3,
                "sam": {
                    "model_type": "vit_tiny",
                    "checkpoint": str(path),
                    "points_per_side": 4,
                    "pred_iou_thresh": 0,
                    "stability_score_thresh": 0,
                    "box_nms_thresh": 1.0,
                },
            }
        )
        assert isinstance(proposer, SamProposals) and proposer.name == "sam"
        assert proposer.amg_params["points_per_side"] == 4 and proposer.refine.max_count == 3
        with pytest.raises(ValueError, match="points_per_side"):
            make_proposer(
                {
                    "method": "sam",
                    "sam": {"model_type": "vit_tiny", "checkpoint": str(path), "points_per_side": "dense"},
                }
            )
    finally:
        clear_sam_cache()


def test_sam_imports_after_a_vtk_render_do_not_crash_the_process(tmp_path):
    """Triton's LLVM next to Mesa's llvmpipe LLVM segfaults; `inspector` keeps Triton out.

    In the app the VTK viewer usually renders before the first SAM proposal imports torchvision's
    ops (which probe for Triton). Run in a child process: a crash must not take the test run down.
    """
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import inspector, vtk\n"
        "w = vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); w.AddRenderer(vtk.vtkRenderer()); w.Render()\n"
        "from inspector.localization.sam import tiny_sam\n"
        "import segment_anything.automatic_mask_generator, torchvision.ops\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "survived" in result.stdout


def test_an_installation_without_torchvision_says_sam_is_unavailable():
    """A packaged build with the CPU-only torch wheel has no torchvision: SAM must say so, not crash."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import sys; sys.modules['torchvision'] = None\n"
        "from inspector.localization.sam import SamUnavailableError, tiny_sam\n"
        "from inspector.localization.proposals import make_proposer\n"
        "try:\n    tiny_sam(64)\nexcept SamUnavailableError as exc:\n    print('tiny:', exc)\n"
        "open('/tmp/anomalens-fake.pth', 'wb').write(b'x')\n"
        "try:\n    make_proposer({'method': 'sam', 'sam': {'checkpoint': '/tmp/anomalens-fake.pth'}})\n"
        "except SamUnavailableError as exc:\n    print('proposer:', exc)\n"
        "print(make_proposer({'method': 'segments'}).name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tiny: Segment Anything cannot run in this installation" in result.stdout
    assert "proposer: Segment Anything cannot run" in result.stdout
    assert result.stdout.strip().endswith("segments")  # the classical proposals still work
