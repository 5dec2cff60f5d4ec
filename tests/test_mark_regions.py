"""Set-of-Mark answers placed on the case: every modality's `locate` with a mark's mask.

A mark the model chose reaches `locate` as ``{"box", "view", "mask", "mark", ...}``: the box in
sent-image pixels and the mark's mask cropped to exactly that box (run lengths). The masks here
are L-shaped or in two parts, so a locate that used the box and ignored the mask (or shifted it
when the box is clipped) gives a different answer than the one checked. Expected values are
computed independently of the code under test: from the render's own arrays and plain slicing.
"""

from __future__ import annotations

import numpy as np
import pytest

from inspector.localization.masks import decode_mask, encode_mask
from inspector.locate import crop_mask, locate_box
from inspector.model import LoadedCase, ViewMap
from inspector.plugins import QueryView
from inspector.prompt import PromptImage


def _query(label: str, width: int, height: int, view_map: ViewMap | None, scale: float = 1.0) -> QueryView:
    """A query view as sent: `width` x `height` sent pixels, `scale` = sent size / view size."""
    image = PromptImage(
        "query", label, b"", "", caption=f"Image to inspect: {label}", width=width, height=height, scale=scale
    )
    return QueryView(image, view_map)


def l_mask(h: int, w: int) -> np.ndarray:
    """An L: the left third of the box, and its bottom third. The box corner opposite is empty."""
    mask = np.zeros((h, w), bool)
    mask[:, : w // 3] = True
    mask[h - h // 3 :, :] = True
    return mask


def two_part_mask(h: int, w: int, left: tuple[int, int], right: tuple[int, int]) -> np.ndarray:
    """Two vertical bars (column spans), rows 25%..75%: two blobs with a gap between them."""
    mask = np.zeros((h, w), bool)
    mask[h // 4 : 3 * h // 4, left[0] : left[1]] = True
    mask[h // 4 : 3 * h // 4, right[0] : right[1]] = True
    return mask


def mark_item(box: list[float], view: str, mask: np.ndarray, mark: int, **extra) -> dict:
    return {
        "box": box,
        "view": view,
        "mask": encode_mask(mask),
        "mark": mark,
        "label": "defect",
        "reason": f"mark {mark} looks wrong",
        **extra,
    }


# ------------------------------------------------------------------------------ the helper


def test_crop_mask_cuts_whole_cells_and_drops_empty_parts():
    mask = two_part_mask(10, 20, (2, 5), (14, 18))
    # a grid of 20 x 10 cells over a box 40 x 20 units wide: a cell is 2 units
    part = crop_mask(mask, (100, 0, 140, 20), (100, 0, 120, 20))
    np.testing.assert_array_equal(part, mask[:, :10])
    assert crop_mask(mask, (100, 0, 140, 20), (112, 0, 126, 20)) is None  # only the gap between the bars
    np.testing.assert_array_equal(crop_mask(mask, (0, 0, 20, 10), (0, 0, 20.3, 10)), mask)  # < half a cell


# ------------------------------------------------------------------------------ image (locate_box)


def _image_query(scale: float = 1.0) -> QueryView:
    # a 400 x 300 case sent as a 200 x 150 view (pixel_scale 2), itself sent at `scale`
    view_map = ViewMap("pixel_scale", {"scale_x": 2.0, "scale_y": 2.0, "case_size": [400, 300]})
    return _query("image", round(200 * scale), round(150 * scale), view_map, scale)


def test_image_mark_keeps_its_mask_and_number():
    mask = l_mask(60, 60)
    region = locate_box(mark_item([40, 30, 100, 90], "image", mask, 3), [_image_query()])
    assert (region.x0, region.y0, region.x1, region.y1) == (80, 60, 200, 180)  # case pixels
    assert region.detail["mark"] == 3 and region.reason == "mark 3 looks wrong" and region.label == "defect"
    np.testing.assert_array_equal(decode_mask(region.detail["mask"]), mask)
    plain = locate_box({"box": [40, 30, 100, 90], "view": "image"}, [_image_query()])
    assert plain.detail == {} and (plain.x0, plain.y0, plain.x1, plain.y1) == (80, 60, 200, 180)


def test_image_box_clipped_by_the_border_keeps_the_mask_aligned():
    # the box runs 30 px past the right edge (sent width 200); the right bar lies out there
    mask = two_part_mask(40, 60, (5, 20), (40, 55))
    region = locate_box(mark_item([170, 100, 230, 140], "image", mask, 7), [_image_query()])
    assert (region.x0, region.y0, region.x1, region.y1) == (340, 200, 400, 280)
    kept = decode_mask(region.detail["mask"])
    np.testing.assert_array_equal(kept, mask[:, :30])  # column c still is case x = 340 + 2c
    assert kept.shape[1] * 2 == region.x1 - region.x0
    # the same with the view sent at half size: the cut is made in sent pixels
    half = locate_box(mark_item([80, 10, 120, 40], "image", mask[:30, :40], 1), [_image_query(0.5)])
    assert (half.x0, half.x1) == (320, 400)
    np.testing.assert_array_equal(decode_mask(half.detail["mask"]), mask[:30, :20])
    # nothing of the mask left inside the image: the region keeps its box and number, not a wrong mask
    outside = locate_box(
        mark_item([170, 100, 230, 140], "image", two_part_mask(40, 60, (35, 40), (45, 55)), 2), [_image_query()]
    )
    assert outside.detail == {"mark": 2}


def test_image_mark_with_a_damaged_mask_keeps_the_box():
    item = mark_item([40, 30, 100, 90], "image", l_mask(60, 60), 4)
    item["mask"] = {"size": [60, 60], "counts": [5, 5]}  # does not fill the box
    region = locate_box(item, [_image_query()])
    assert region.detail == {"mark": 4} and region.x1 == 200


# ------------------------------------------------------------------------------ DICOM


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    from inspector.plugins import discover
    from plugins.dicom_modality import synthetic

    folder = tmp_path_factory.mktemp("marks") / "ct"
    synthetic.write_series(folder, synthetic.ct_phantom(9, (128, 128), seed=9))
    plugin = discover().modality("dicom")
    return plugin, plugin.read(folder)


def test_dicom_mark_becomes_a_region_on_its_slice_with_the_mask(dicom_case):
    plugin, loaded = dicom_case
    views = plugin.render(loaded, {"slices": [2, 6]})
    queries = [_query(v.label, v.image.shape[1], v.image.shape[0], v.view_map) for v in views]
    mask = l_mask(120, 120)
    region = plugin.locate(mark_item([120, 60, 240, 180], views[1].label, mask, 5), queries, loaded)
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((40, 20, 80, 60))  # view is 3x the slice
    assert region.detail["slice"] == 6 and region.detail["mark"] == 5
    np.testing.assert_array_equal(decode_mask(region.detail["mask"]), mask)
    assert set(region.detail) == {"slice", "mask", "mark"}
    # a box past the slice's corner: cut to the view, the mask cut the same way
    corner = plugin.locate(mark_item([300, 300, 420, 420], views[0].label, mask, 6), queries, loaded)
    assert corner.detail["slice"] == 2
    assert (corner.x1, corner.y1) == pytest.approx((128, 128))
    np.testing.assert_array_equal(decode_mask(corner.detail["mask"]), mask[:84, :84])
    plain = plugin.locate({"box": [120, 60, 240, 180], "view": views[1].label}, queries, loaded)
    assert plain.detail == {"slice": 6}


# ------------------------------------------------------------------------------ video


@pytest.fixture(scope="module")
def video_case(tmp_path_factory):
    from inspector.plugins import discover
    from tests.test_video_modality import write_video

    plugin = discover().modality("video")
    loaded = plugin.read(write_video(tmp_path_factory.mktemp("marks") / "v.mp4", frames=81))
    views = plugin.render(loaded, {})
    return plugin, loaded, views


def test_video_mark_on_a_tile_becomes_a_frame_box_with_the_mask(video_case):
    plugin, loaded, views = video_case
    (grid,) = views
    queries = [_query(grid.label, grid.image.shape[1], grid.image.shape[0], grid.view_map)]
    tile = grid.view_map.params["tiles"][4]
    assert tile["frame"] == 40
    sx, sy = 160 / tile["w"], 96 / tile["h"]
    mask = l_mask(40, 60)
    box = [tile["x"] + 10, tile["y"] + 12, tile["x"] + 70, tile["y"] + 52]
    region = plugin.locate(mark_item(box, grid.label, mask, 9), queries, loaded)
    assert region.detail["frames"] == [40, 40] and region.detail["mark"] == 9
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((10 * sx, 12 * sy, 70 * sx, 52 * sy))
    np.testing.assert_array_equal(decode_mask(region.detail["mask"]), mask)
    # a box that spills onto the next tile is still placed (mostly on frame 40), but without a mask
    spill = [tile["x"] + tile["w"] - 40, tile["y"] + 12, tile["x"] + tile["w"] + 25, tile["y"] + 52]
    spilled = plugin.locate(mark_item(spill, grid.label, l_mask(40, 65), 2), queries, loaded)
    assert spilled.detail == {"frames": [40, 40], "mark": 2}
    assert spilled.x1 == pytest.approx(160.0)
    plain = plugin.locate({"box": box, "view": grid.label}, queries, loaded)
    assert plain.detail == {"frames": [40, 40]}


# ------------------------------------------------------------------------------ point cloud


@pytest.fixture(scope="module")
def cloud_case():
    from inspector.plugins import discover
    from tests.test_point_cloud_formats import plugin_module

    plugin = discover().modality("point_cloud")
    part = plugin_module("synthetic").make_part(1, "", n_points=20_000)
    cloud, _ = plugin_module("cloud").make_cloud(part.points, None)
    loaded = LoadedCase("point_cloud", cloud, {"points": len(part.points)})
    return plugin, loaded, plugin.render(loaded, {})[0]


def _ids(values: np.ndarray) -> np.ndarray:
    return np.unique(values[values >= 0])


def test_point_cloud_mark_selects_only_the_points_inside_the_mask(cloud_case):
    plugin, loaded, grid = cloud_case
    index = grid.view_map.arrays["point_index"]
    tile = grid.view_map.params["tiles"][1]  # view 2
    tx, ty, _, _ = tile["rect"]
    local = (100, 120, 220, 200)
    box = [tx + local[0], ty + local[1], tx + local[2], ty + local[3]]
    mask = l_mask(80, 120)
    under = index[box[1] : box[3], box[0] : box[2]]
    expected = _ids(under[mask])
    whole_box = _ids(under)
    assert 50 < expected.size < whole_box.size  # the L's empty corner covers points of the part

    query = _query(grid.label, grid.image.shape[1], grid.image.shape[0], grid.view_map)
    region = plugin.locate(mark_item(box, "view 2", mask, 4), [query], loaded)
    assert region.detail["point_ids"] == expected.tolist() and region.detail["points"] == expected.size
    assert region.detail["view"] == "view 2" and region.detail["mark"] == 4
    assert (region.x0, region.y0, region.x1, region.y1) == local  # the tile's own pixels, as before
    np.testing.assert_array_equal(decode_mask(region.detail["mask"]), mask)
    plain = plugin.locate({"box": box, "view": "view 2"}, [query], loaded)
    assert plain.detail["point_ids"] == whole_box.tolist() and "mark" not in plain.detail

    # the grid sent at half size: the mask is at half resolution, each view pixel reads its cell
    half_mask = mask[::2, ::2]
    half = _query(grid.label, grid.image.shape[1] // 2, grid.image.shape[0] // 2, grid.view_map, 0.5)
    small = plugin.locate(mark_item([v / 2 for v in box], grid.label, half_mask, 4), [half], loaded)
    full_again = np.repeat(np.repeat(half_mask, 2, axis=0), 2, axis=1)
    assert small.detail["point_ids"] == _ids(under[full_again]).tolist()


def test_point_cloud_mark_cut_by_its_tile_keeps_the_mask_aligned(cloud_case):
    plugin, loaded, grid = cloud_case
    index = grid.view_map.arrays["point_index"]
    tile = grid.view_map.params["tiles"][0]  # view 1, with view 2 to its right
    tx, ty, tw, _ = tile["rect"]
    box = [tx + tw - 60, ty + 100, tx + tw + 20, ty + 160]  # 20 px past the tile's right edge
    mask = two_part_mask(60, 80, (10, 30), (65, 78))  # the right bar lies off the tile
    query = _query(grid.label, grid.image.shape[1], grid.image.shape[0], grid.view_map)
    region = plugin.locate(mark_item(box, grid.label, mask, 8), [query], loaded)
    assert region.detail["view"] == "view 1"
    assert (region.x0, region.x1) == (tw - 60, tw)
    np.testing.assert_array_equal(decode_mask(region.detail["mask"]), mask[:, :60])
    expected = _ids(index[box[1] : box[3], box[0] : box[0] + 60][mask[:, :60]])
    assert expected.size > 0 and region.detail["point_ids"] == expected.tolist()


# ------------------------------------------------------------------------------ time series


def test_time_series_mark_range_comes_from_the_mask_columns(tmp_path):
    from inspector.plugins import discover
    from tests.test_time_series import _write_csv

    plugin = discover().modality("time_series")
    loaded = plugin.read(_write_csv(tmp_path / "loc.csv", n=600))
    views = plugin.render(loaded, {})
    view = views[0]
    queries = [_query(v.label, v.image.shape[1], v.image.shape[0], v.view_map) for v in views]
    p = view.view_map.params
    series = loaded.data

    def x_of(i: int) -> float:
        fraction = (series.time[i] - p["t_start"]) / (p["t_end"] - p["t_start"])
        return p["x_left"] + fraction * (p["x_right"] - p["x_left"])

    x0, x1 = round(x_of(250)), round(x_of(400))
    box = [x0, 40, x1, 140]
    a, b = round(x_of(300)) - x0, round(x_of(350)) - x0
    mask = two_part_mask(100, x1 - x0, (a, a + 4), (b - 4, b))  # two blobs: the range spans both
    region = plugin.locate(mark_item(box, view.label, mask, 6), queries, loaded)
    first, last = region.detail["samples"]
    assert abs(first - 300) <= 1 and abs(last - 350) <= 1
    assert region.detail["mark"] == 6 and region.detail["column"] == "temperature"
    plain = plugin.locate({"box": box, "view": view.label}, queries, loaded)
    assert abs(plain.detail["samples"][0] - 250) <= 1 and abs(plain.detail["samples"][1] - 400) <= 1
    assert "mark" not in plain.detail
