"""Depth renders of point clouds: pose normalisation, views, pixel -> point maps, locate, offline.

Clouds are synthetic parts (the plugin's `synthetic` module) written as real files where the
service reads them. Rendering is exercised on both backends (VTK EGL off-screen when this
machine has it, numpy otherwise) and from worker threads, as the service calls it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inspector.inspection import InspectionService
from inspector.model import LoadedCase, Profile, VerdictSource
from inspector.plugins import QueryView
from inspector.prompt import PromptImage
from inspector.store import ProjectStore
from tests.test_point_cloud_formats import plugin_module, write_ply


def _case(points, colors=None) -> LoadedCase:
    cloud, _ = plugin_module("cloud").make_cloud(points, colors)
    return LoadedCase("point_cloud", cloud, {"points": len(points)})


def _part(seed: int, defect: str = "", n: int = 20_000, **kw):
    return plugin_module("synthetic").make_part(seed, defect, n_points=n, **kw)


@pytest.fixture
def plugin(registry):
    return registry.modality("point_cloud")


@pytest.fixture(scope="module")
def part_case():
    return _case(_part(1).points)


def _query(view, scale: float = 1.0) -> QueryView:
    h, w = view.image.shape[:2]
    image = PromptImage(
        "query",
        view.label,
        b"",
        "",
        caption=f"Image to inspect: {view.label}",
        width=round(w * scale),
        height=round(h * scale),
        scale=scale,
    )
    return QueryView(image, view.view_map)


# ------------------------------------------------------------------------------- pose


def test_pose_normalisation_puts_moved_copies_in_one_frame_and_never_mirrors():
    pose_module = plugin_module("pose")
    base = _part(3, pose=False, n=8000).points.astype(np.float64)
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a rotation
    moved = base @ q.T * 37.0 + [120.0, -40.0, 9.0]
    pose = pose_module.estimate_pose(moved)
    assert np.linalg.det(pose.rotation) == pytest.approx(1.0)
    a = pose_module.estimate_pose(base).apply(base)
    b = pose.apply(moved)
    np.testing.assert_allclose(a, b, atol=2e-3)
    mirrored = moved * [-1.0, 1.0, 1.0]  # the mirror-image part is a different part
    c = pose_module.estimate_pose(mirrored).apply(mirrored)
    assert np.abs(c - a).max() > 0.5
    # unit radius (99.5th percentile), centred, principal axes by decreasing extent
    radius = np.percentile(np.linalg.norm(a, axis=1), 99.5)
    assert radius == pytest.approx(1.0, abs=1e-3)
    assert np.abs(a.mean(axis=0)).max() < 1e-4
    spread = a.std(axis=0)
    assert spread[0] > spread[1] > spread[2]


# ------------------------------------------------------------------------------ render


def test_default_render_is_one_labelled_grid_of_six_depth_views(plugin, part_case):
    views = plugin.render(part_case, {})
    assert len(views) == 1
    view = views[0]
    assert view.label == "depth views" and view.image.dtype == np.uint8 and view.image.shape[2] == 3
    vm = view.view_map
    assert vm.kind == "depth_grid"
    tiles = vm.params["tiles"]
    assert [t["label"] for t in tiles] == [f"view {k}" for k in range(1, 7)]
    assert [t["camera"]["name"] for t in tiles] == ["front", "right", "back", "left", "top", "bottom"]
    assert vm.params["image_size"] == [320, 320] and vm.params["renderer"] in ("vtk", "numpy")
    index = vm.arrays["point_index"]
    assert index.shape == view.image.shape[:2] and index.dtype == np.int32
    assert max(view.image.shape[:2]) <= 1024  # sent as is: boxes need no rescaling
    for tile in tiles:
        x, y, w, h = tile["rect"]
        tile_index = index[y : y + h, x : x + w]
        shown = tile_index >= 0
        assert shown.mean() > 0.05  # the part fills a good share of every view
        # the picture shows something exactly where the map has points, and background elsewhere
        assert (view.image[y : y + h, x : x + w][shown].max(axis=1) > 0).all()
        # the label bar above the tile carries text
        assert view.image[y - 18 : y - 2, x : x + 60].std() > 10
    # outside the tiles (labels, gaps) nothing maps to a point
    mask = np.zeros(index.shape, bool)
    for tile in tiles:
        x, y, w, h = tile["rect"]
        mask[y : y + h, x : x + w] = True
    assert (index[~mask] == -1).all()
    json_ok = __import__("json").dumps(vm.to_record())
    assert "point_index" not in json_ok


def test_index_map_holds_front_most_points_at_their_pixels(part_case):
    depthviews = plugin_module("depthviews")
    cameras = plugin_module("cameras")
    views, info = depthviews.render_views(part_case.data, 6, 200)
    canonical = part_case.data.pose().apply(part_case.data.points)
    half = info["point_size"] // 2 + 1
    for view in views:
        rows, cols = np.nonzero(view.index >= 0)
        ids = view.index[rows, cols]
        col, row, t = cameras.project(canonical[ids], view.spec, 200)
        # each id is drawn within its splat around its own projection ...
        assert np.abs(np.floor(col) - cols).max() <= half and np.abs(np.floor(row) - rows).max() <= half
        # ... its depth is the pixel's depth ...
        np.testing.assert_allclose(view.depth[rows, cols], t, atol=2e-3)
        # ... and nothing else projecting onto the pixel is nearer (front-most)
        c_all, r_all, t_all = cameras.project(canonical, view.spec, 200)
        pix = np.floor(r_all).astype(int) * 200 + np.floor(c_all).astype(int)
        nearest = np.full(200 * 200, -np.inf)
        inside = (c_all >= 0) & (c_all < 200) & (r_all >= 0) & (r_all < 200)
        np.maximum.at(nearest, pix[inside], t_all[inside])
        centre_pix = np.floor(row).astype(int) * 200 + np.floor(col).astype(int)
        own = np.floor(row).astype(int) == rows
        own &= np.floor(col).astype(int) == cols
        assert np.all(t[own] >= nearest[centre_pix[own]] - 1e-4)


def test_backends_agree_and_worker_threads_render_the_same(part_case):
    raster = plugin_module("raster")
    cameras = plugin_module("cameras")
    canonical = part_case.data.pose().apply(part_case.data.points)
    specs = cameras.view_specs(3)
    reference, used = raster.rasterize(canonical, specs, 160, 2)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: raster.rasterize(canonical, specs, 160, 2), range(4)))
    for result, backend in results:
        assert backend == used
        for (_, i0), (_, i1) in zip(reference, result, strict=True):
            np.testing.assert_array_equal(i0, i1)
    if not raster.vtk_available():
        pytest.skip("VTK EGL off-screen rendering is not available here; numpy backend checked alone")
    vtk_result, used = raster.rasterize(canonical, specs, 160, 2, backend="vtk")
    assert used == "vtk"
    numpy_result, _ = raster.rasterize(canonical, specs, 160, 2, backend="numpy")
    for (_, i_vtk), (_, i_np) in zip(vtk_result, numpy_result, strict=True):
        assert (i_vtk >= 0).sum() == pytest.approx((i_np >= 0).sum(), rel=0.02)
        assert (i_vtk == i_np).mean() > 0.97


def test_separate_layout_view_counts_and_shading(plugin, part_case):
    views = plugin.render(part_case, {"views": 3, "layout": "separate", "size": 128, "shaded": True})
    assert [v.label for v in views] == ["view 1", "view 2", "view 3"]
    assert all(v.view_map.kind == "depth_view" and v.image.shape == (128, 128, 3) for v in views)
    assert views[2].view_map.params["camera"]["name"] == "back"
    assert views[0].view_map.arrays["point_index"].shape == (128, 128)
    plain = plugin.render(part_case, {"views": 1, "layout": "separate", "size": 128})[0].image
    assert not np.array_equal(plain, views[0].image)  # relief, not depth
    again = plugin.render(part_case, {"views": 3, "layout": "separate", "size": 128, "shaded": True})
    assert again[0].image is views[0].image  # opening and inspecting a case render once
    many = plugin.render(part_case, {"views": 99, "size": 64})[0].view_map.params["tiles"]
    assert len(many) == 27 and len({t["camera"]["name"] for t in many}) == 27
    assert len(plugin.render(part_case, {"views": 0, "size": 64})[0].view_map.params["tiles"]) == 1
    odd = plugin.render(part_case, {"views": "many", "size": None, "layout": "mosaic", "point_size": "big"})[0]
    assert odd.view_map.kind == "depth_grid" and len(odd.view_map.params["tiles"]) == 6
    assert plugin.render(part_case, {"views": 1, "point_size": 5})[0].view_map.params["point_size"] == 5


# ------------------------------------------------------------------------------ locate


def test_box_on_a_grid_tile_becomes_the_point_ids_under_it(plugin, part_case):
    mapping = plugin_module("mapping")
    grid = plugin.render(part_case, {})[0]
    tile = grid.view_map.params["tiles"][1]  # view 2
    x, y, _, _ = tile["rect"]
    local = (100.0, 120.0, 220.0, 200.0)
    box = [x + local[0], y + local[1], x + local[2], y + local[3]]
    expected = np.unique(grid.view_map.arrays["point_index"][y + 120 : y + 200, x + 100 : x + 220])
    expected = expected[expected >= 0]
    assert expected.size > 50
    region = plugin.locate({"box": box, "view": "view 2", "label": "dent"}, [_query(grid)], part_case)
    assert region is not None and region.label == "dent"
    assert region.detail["view"] == "view 2" and region.detail["points"] == expected.size
    assert region.detail["point_ids"] == expected.tolist()
    assert (region.x0, region.y0, region.x1, region.y1) == local  # in the view's own pixels
    # the model saw the grid at half size: boxes in sent pixels are scaled back
    half = [v / 2 for v in box]
    again = plugin.locate({"box": half, "view": "Image to inspect: depth views"}, [_query(grid, 0.5)], part_case)
    assert again.detail["point_ids"] == expected.tolist()
    # a box on the label bars only, or a bad box, places nothing
    assert plugin.locate({"box": [x, y - 18, x + 50, y - 3], "view": "view 2"}, [_query(grid)], part_case) is None
    assert plugin.locate({"box": "somewhere"}, [_query(grid)], part_case) is None
    assert mapping.MAX_POINT_IDS == 20_000


def test_separate_views_and_unplaceable_items(plugin, part_case):
    views = plugin.render(part_case, {"layout": "separate", "views": 4, "size": 200})
    queries = [_query(v) for v in views]
    region = plugin.locate({"box": [50, 50, 150, 150], "view": "view 3"}, queries, part_case)
    index = views[2].view_map.arrays["point_index"][50:150, 50:150]
    assert region.detail["view"] == "view 3"
    assert region.detail["point_ids"] == np.unique(index[index >= 0]).tolist()
    assert plugin.locate({"box": [50, 50, 150, 150]}, queries, part_case) is None  # which view?
    assert plugin.locate({"box": [50, 50, 150, 150], "view": "view 9"}, queries, part_case) is None
    assert plugin.locate({"range": [1, 5], "unit": "frames"}, queries, part_case) is None


def test_point_ids_are_capped_and_say_so(plugin):
    dense = _case(_part(2, n=200_000).points)
    grid = plugin.render(dense, {"views": 1, "size": 1024})[0]
    region = plugin.locate({"box": [0, 0, 1100, 1100]}, [_query(grid)], dense)
    assert region.detail["points"] > 20_000
    assert len(region.detail["point_ids"]) == 20_000 and region.detail["point_ids_truncated"] is True
    assert region.detail["point_ids"] == sorted(region.detail["point_ids"])


# ------------------------------------------------------------------------------ offline


def test_offline_detector_scores_a_bump_and_maps_it_to_points(tmp_path, registry):
    from inspector.metrics import auroc

    detect = plugin_module("detect")
    refs = [write_ply(tmp_path / f"ref{k}.ply", _part(100 + k, n=15_000).points) for k in range(3)]
    good = write_ply(tmp_path / "good.ply", _part(200, n=15_000).points)
    bumped_part = _part(205, "bump", n=15_000)
    bumped = write_ply(tmp_path / "bumped.ply", bumped_part.points)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        profile = store.save_profile(
            Profile(name="Bracket", class_name="bracket", modality="point_cloud", domain_preset="point_cloud")
        )
        assert sum(service.add_reference_file(profile.id, p) for p in refs) == 3
        stored = service.reference_images(profile.id)
        assert stored[0][0] == "ref0.ply depth views" and stored[0][1].shape == (500, 688, 3)
        result = service.import_files([good, bumped])
        verdicts = {c.name: service.inspect_offline(c, profile) for c in result.added}
        normal, defect = verdicts["good.ply"], verdicts["bumped.ply"]
        assert defect.source == VerdictSource.OFFLINE and defect.heatmap_sha256
        assert defect.anomalous and not normal.anomalous and defect.score > normal.score
        heat = service.heatmap(defect)
        assert heat.shape == (500, 688)
        details = defect.details
        assert [v["view"] for v in details["per_view_max"]] == [f"view {k}" for k in range(1, 7)]
        assert details["render"]["views"] == 6 and details["points_seen"] > 10_000
        assert len(details["top_points"]) == detect.TOP_POINTS
        scores = [s for _, s in details["top_points"]]
        assert scores == sorted(scores, reverse=True)
        assert defect.regions and all(r.detail["point_ids"] for r in defect.regions)
        assert all(r.detail["view"].startswith("view ") for r in defect.regions)
        # the stored heat map maps back to points through the (deterministic) montage index:
        # points on the bump score higher than the others
        montage, _ = detect.offline_montage(service.load_case(result.added[1]))
        points = detect.point_scores(heat, montage.index, len(bumped_part.points))
        seen = np.isfinite(points)
        assert auroc(points[seen], bumped_part.defect_mask[seen]) > 0.75
        service.close()


def test_scans_of_a_symmetric_part_look_at_the_same_side():
    """A nearly symmetric panel sampled anew each time: the views must not show its front for one
    scan and its back for another (the skew of x and y is pure sampling noise here)."""
    from plugins.pointcloud_modality.samples import _bracket_points

    pose = plugin_module("pose")
    normals = []
    for seed in range(8):
        points = _bracket_points(np.random.default_rng(seed), 30_000, dent=seed % 2 == 1)
        axes = pose.estimate_pose(points).rotation
        assert np.isclose(np.linalg.det(axes), 1.0)  # a rotation, never a mirror
        normals.append(float(axes[2] @ np.array([0.0, 0.0, 1.0])))
    assert all(n > 0.99 for n in normals) or all(n < -0.99 for n in normals), normals
