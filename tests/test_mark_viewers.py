"""Set-of-Mark regions and operator-drawn regions in the image, DICOM and video viewers.

A region carrying a mark's mask must be filled exactly where the mask is: the view is grabbed
with the overlay on and off, and every mask cell away from the mask's edges (and from the box
outline and its number) is compared. Cells inside the mask must change colour towards red, cells
inside the box but outside the mask must not change at all. Drawing is driven with real mouse
events on the viewport, as an operator would drag.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QGraphicsSimpleTextItem

from inspector.localization.masks import encode_mask
from inspector.model import LoadedCase, Region, ScoreSource, Verdict, VerdictSource
from plugins.dicom_modality.viewer import DicomViewer
from plugins.image_modality.viewer import ImageViewer
from plugins.video_modality.viewer import VideoViewer
from views.viewer_api import MaskOverlay

pytestmark = pytest.mark.gui


def l_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:, : w // 3] = True
    mask[h - h // 3 :, :] = True
    return mask


def verdict_with(*regions: Region) -> Verdict:
    return Verdict(
        case_id=1,
        source=VerdictSource.VLM,
        anomalous=True,
        score=0.9,
        score_source=ScoreSource.LOGPROB,
        regions=list(regions),
        id=1,
    )


def grab(viewer) -> np.ndarray:
    image = viewer.view.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return array[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int).copy()


def cell_samples(viewer, overlay: MaskOverlay) -> tuple[list[QPoint], list[QPoint]]:
    """Viewport pixels at the centres of mask cells, (inside the mask, outside it), skipping cells
    next to a mask edge and the corner where the outline's number sits."""
    mask = overlay.mask
    padded = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    inside, outside = [], []
    for r in range(1, h - 1, 2):
        for c in range(1, w - 1, 2):
            block = padded[r : r + 3, c : c + 3]
            if block.all() != block.any() or (r < 0.3 * h and c < 0.3 * w):
                continue  # an edge cell, or under the number label
            point = viewer.view.mapFromScene(overlay.mapToScene(QPointF(c + 0.5, r + 0.5)))
            (inside if mask[r, c] else outside).append(point)
    return inside, outside


def assert_overlay_matches_mask(viewer) -> None:
    """The viewer's one mask overlay, grabbed with Regions on and off (the video viewer rebuilds its
    overlays on every toggle, so the item is looked up again each time)."""
    shown = grab(viewer)
    viewer.action_regions.setChecked(False)
    assert viewer.mask_items and not any(item.isVisible() for item in viewer.mask_items)
    hidden = grab(viewer)
    viewer.action_regions.setChecked(True)
    (overlay,) = viewer.mask_items
    assert overlay.isVisible()
    inside, outside = cell_samples(viewer, overlay)
    assert len(inside) > 20 and len(outside) > 20
    for point in inside:  # red at alpha 90 over the image: more red, less green
        on, off = shown[point.y(), point.x()], hidden[point.y(), point.x()]
        assert (on[0] - off[0]) - (on[1] - off[1]) > 25, (point, on, off)
    for point in outside:
        on, off = shown[point.y(), point.x()], hidden[point.y(), point.x()]
        assert np.abs(on - off).max() <= 3, (point, on, off)


def outline_text(rect) -> str:
    return next(child.text() for child in rect.childItems() if isinstance(child, QGraphicsSimpleTextItem))


def drag(viewer, scene_from: tuple[float, float], scene_to: tuple[float, float]) -> None:
    viewport = viewer.view.viewport()
    start = viewer.view.mapFromScene(QPointF(*scene_from))
    end = viewer.view.mapFromScene(QPointF(*scene_to))
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


# ------------------------------------------------------------------------------ image viewer


@pytest.fixture
def image_viewer(qtbot):
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.resize(700, 560)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.show_case(LoadedCase("image", np.full((160, 200, 3), 128, np.uint8)))
    return viewer


def test_image_viewer_fills_the_mask_and_names_the_mark(image_viewer):
    viewer = image_viewer
    mask = l_mask(50, 60)  # a mask grid at half the case resolution: it is stretched over the box
    region = Region(
        40,
        30,
        160,
        130,
        score=1.0,
        label="dent",
        reason="a dent in the rim",
        detail={"mask": encode_mask(mask), "mark": 3},
    )
    plain = Region(170, 10, 190, 40, score=0.5, label="scratch")
    viewer.show_verdict(verdict_with(region, plain), None)
    assert len(viewer.region_items) == 2 and len(viewer.mask_items) == 1  # the plain box has no mask
    (overlay,) = viewer.mask_items
    np.testing.assert_array_equal(overlay.mask, mask)
    assert overlay.scene_rect().getCoords() == pytest.approx((40, 30, 160, 130))
    expected = np.zeros((160, 200), bool)
    expected[30:130, 40:160] = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(overlay.case_mask((160, 200)), expected)
    assert outline_text(viewer.region_items[0]) == "#3" and outline_text(viewer.region_items[1]) == "2"
    assert "a dent in the rim" in viewer.region_items[0].toolTip()
    assert viewer.region_items[0].toolTip().startswith("#3: ")
    assert_overlay_matches_mask(viewer)
    viewer.show_verdict(None, None)
    assert viewer.mask_items == []


def test_image_viewer_draws_regions_in_case_pixels(qtbot, image_viewer):
    viewer = image_viewer
    assert viewer.render_options() == {}
    viewer.view.set_zoom(6.0)
    viewer.view.centerOn(100, 80)
    before = viewer.view.horizontalScrollBar().value()
    drag(viewer, (100, 80), (90, 80))  # the tool is off: a drag pans, nothing is drawn
    assert viewer.view.horizontalScrollBar().value() > before
    assert viewer.render_options() == {} and viewer.drawn_items == []
    viewer.view.fit()
    zoom = viewer.view.zoom_factor()

    viewer.action_draw.setChecked(True)
    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        drag(viewer, (20, 30), (120, 90))
    tolerance = 1.5 / zoom + 0.5  # a viewport pixel at this zoom, plus rounding
    (drawn,) = viewer.render_options()["drawn_regions"]
    assert drawn == pytest.approx([20, 30, 120, 90], abs=tolerance)
    assert all(isinstance(v, float) for v in drawn)
    assert len(viewer.drawn_items) == 1 and viewer.drawn_items[0].pen().style() == Qt.PenStyle.DashLine
    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        drag(viewer, (150, 140), (260, 200))  # runs off the image: clipped to it
    assert viewer.render_options()["drawn_regions"][1] == pytest.approx([150, 140, 200, 160], abs=tolerance)
    viewer.view.cursor_moved.emit(50.0, 60.0)  # the readout still works while drawing
    assert viewer.readout.text().startswith("x 50  y 60")

    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        viewer.action_clear_drawn.trigger()
    assert viewer.render_options() == {} and viewer.drawn_items == []
    drag(viewer, (20, 30), (21, 31))  # a click is not a region
    assert viewer.render_options() == {}
    drag(viewer, (20, 30), (60, 70))
    assert len(viewer.render_options()["drawn_regions"]) == 1
    viewer.show_case(LoadedCase("image", np.full((100, 100, 3), 90, np.uint8)))  # another case
    assert viewer.render_options() == {} and viewer.drawn_items == []
    viewer.action_draw.setChecked(False)
    assert viewer.view.dragMode() == viewer.view.DragMode.ScrollHandDrag


# ------------------------------------------------------------------------------ DICOM viewer


@pytest.fixture
def dicom_viewer(qtbot, tmp_path, registry):
    from tests.test_dicom_reader import write_ct_series

    folder = tmp_path / "series"
    write_ct_series(folder, n=12, size=(96, 128))
    loaded = registry.modality("dicom").read(folder)
    viewer = DicomViewer()
    qtbot.addWidget(viewer)
    viewer.resize(900, 600)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.show_case(loaded, DicomViewer.prepare_display(loaded))
    return viewer, loaded


def test_dicom_viewer_shows_the_mask_on_its_slice_only(dicom_viewer):
    viewer, _ = dicom_viewer
    mask = l_mask(40, 60)
    region = Region(
        20, 30, 80, 70, score=1.0, reason="a bright spot", detail={"slice": 3, "mask": encode_mask(mask), "mark": 5}
    )
    viewer.show_verdict(verdict_with(region), None)
    (overlay,) = viewer.mask_items
    assert viewer.current_slice == 6 and not overlay.isVisible()
    viewer.set_slice(3)
    assert overlay.isVisible()
    _, rect = viewer.region_items[0]
    assert outline_text(rect) == "#5" and "a bright spot" in rect.toolTip()
    expected = viewer.image_item.mapRectToScene(QRectF(20, 30, 60, 40))
    assert overlay.scene_rect().getCoords() == pytest.approx(expected.getCoords())  # the box, on the slice
    assert_overlay_matches_mask(viewer)
    viewer.set_slice(4)
    assert not overlay.isVisible()


def test_dicom_viewer_draws_regions_per_slice(qtbot, tmp_path, dicom_viewer, registry):
    from tests.test_dicom_reader import write_ct_series

    viewer, loaded = dicom_viewer
    viewer.action_draw.setChecked(True)
    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        drag(viewer, (10, 20), (60, 50))
    tolerance = 1.5 / viewer.view.zoom_factor() + 0.5
    options = viewer.render_options()
    assert options["slice"] == 6 and options["drawn_regions"] == [pytest.approx([10, 20, 60, 50], abs=tolerance)]
    ((slice_index, item),) = viewer.drawn_items
    assert slice_index == 6 and item.isVisible()
    viewer.set_slice(7)
    assert "drawn_regions" not in viewer.render_options() and not item.isVisible()
    viewer.set_slice(6)
    assert len(viewer.render_options()["drawn_regions"]) == 1 and item.isVisible()
    registry.modality("dicom").render(loaded, viewer.render_options())  # the renderer takes the options as they are
    with qtbot.waitSignal(viewer.render_options_changed, timeout=2000):
        viewer.action_clear_drawn.trigger()
    assert "drawn_regions" not in viewer.render_options() and viewer.drawn_items == []
    drag(viewer, (10, 20), (60, 50))
    assert "drawn_regions" in viewer.render_options()
    write_ct_series(tmp_path / "other", n=5, size=(64, 64))
    other = registry.modality("dicom").read(tmp_path / "other")
    viewer.show_case(other, DicomViewer.prepare_display(other))
    assert "drawn_regions" not in viewer.render_options() and viewer.drawn_items == []
    viewer.action_draw.setChecked(False)
    with qtbot.assertNotEmitted(viewer.render_options_changed):
        drag(viewer, (10, 20), (60, 50))  # left drag pans again
    assert viewer.drawn_items == []


# ------------------------------------------------------------------------------ video viewer


def test_video_viewer_shows_the_mask_on_its_frame_only(qtbot, tmp_path, registry):
    from tests.test_video_modality import write_video

    loaded = registry.modality("video").read(write_video(tmp_path / "v.mp4", frames=30))
    viewer = VideoViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.show_case(loaded, VideoViewer.prepare_display(loaded))
    mask = l_mask(40, 60)
    region = Region(
        40,
        30,
        130,
        90,
        score=1.0,
        reason="someone running",
        detail={"frames": [12, 12], "mask": encode_mask(mask), "mark": 2},
    )
    viewer.show_verdict(verdict_with(region), None)  # a new verdict seeks to its first box
    qtbot.waitUntil(lambda: viewer.shown_frame() == 12, timeout=5000)
    (overlay,) = viewer.mask_items
    assert overlay.isVisible() and outline_text(viewer.region_items[0]) == "#2"
    assert overlay.scene_rect().getCoords() == pytest.approx((40, 30, 130, 90))
    assert_overlay_matches_mask(viewer)
    viewer.seek(20)
    qtbot.waitUntil(lambda: viewer.shown_frame() == 20, timeout=5000)
    assert viewer.mask_items == [] and viewer.region_items == []
