"""The DICOM viewer widget with real input events: wheel, keys, right-drag window/level, presets,
hidden patient data, regions and heat maps on their own slice."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from inspector.model import Region, ScoreSource, Verdict, VerdictSource
from plugins.dicom_modality.viewer import DicomViewer
from tests.test_dicom_reader import PATIENT_NAME, bundled, write_ct_series

pytestmark = pytest.mark.gui


@pytest.fixture
def loaded(tmp_path, registry):
    folder = tmp_path / "series"
    write_ct_series(folder, n=12, size=(96, 128))
    return registry.modality("dicom").read(folder)


@pytest.fixture
def viewer(qtbot, loaded):
    widget = DicomViewer()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    widget.show_case(loaded, DicomViewer.prepare_display(loaded))
    return widget


def _shown_pixels(viewer: DicomViewer) -> np.ndarray:
    """The grey pixels of the pixmap on screen (copied while the QImage is alive)."""
    image = viewer.image_item.pixmap().toImage()
    image = image.convertToFormat(image.Format.Format_Grayscale8)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, :width].copy()


def _wheel(viewer: DicomViewer, steps: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    viewport = viewer.view.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(
        centre,
        viewport.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, event)


def test_opens_on_what_the_plugin_renders_by_default(viewer, loaded, registry):
    volume = loaded.data
    assert viewer.current_slice == 6 and viewer.slider.value() == 6 and viewer.spin.value() == 7
    assert viewer.render_options() == {"slice": 6, "window": [40.0, 400.0]}
    (default_view,) = registry.modality("dicom").render(loaded, {})
    (from_viewer,) = registry.modality("dicom").render(loaded, viewer.render_options())
    np.testing.assert_array_equal(default_view.image, from_viewer.image)
    np.testing.assert_array_equal(_shown_pixels(viewer), volume.windowed(6))
    assert viewer.info.text() == "slice 7/12   W 400  L 40"
    assert viewer.window_combo.currentText() == "File: from file (W 400 L 40)"


def test_wheel_keys_slider_and_spin_move_through_slices(qtbot, viewer):
    with qtbot.waitSignal(viewer.render_options_changed):
        _wheel(viewer, -1)  # towards the operator: next slice
    assert viewer.current_slice == 7
    _wheel(viewer, 2)
    assert viewer.current_slice == 5
    zoom = viewer.view.zoom_factor()
    _wheel(viewer, 1, Qt.KeyboardModifier.ControlModifier)  # Ctrl+wheel zooms instead
    assert viewer.current_slice == 5 and viewer.view.zoom_factor() > zoom
    viewer.view.setFocus()
    qtbot.keyClick(viewer.view, Qt.Key.Key_Down)
    assert viewer.current_slice == 6
    qtbot.keyClick(viewer.view, Qt.Key.Key_Up)
    qtbot.keyClick(viewer.view, Qt.Key.Key_Up)
    assert viewer.current_slice == 4
    qtbot.keyClick(viewer.view, Qt.Key.Key_PageDown)
    assert viewer.current_slice == 5  # a page is a tenth of the series (at least one slice)
    qtbot.keyClick(viewer.view, Qt.Key.Key_End)
    assert viewer.current_slice == 11 and viewer.render_options()["slice"] == 11
    qtbot.keyClick(viewer.view, Qt.Key.Key_Home)
    assert viewer.current_slice == 0
    viewer.slider.setValue(9)
    assert viewer.current_slice == 9 and viewer.spin.value() == 10
    viewer.spin.setValue(3)
    assert viewer.current_slice == 2 and viewer.slider.value() == 2
    np.testing.assert_array_equal(_shown_pixels(viewer), viewer._volume.windowed(2))


def test_presets_and_right_drag_change_the_window(qtbot, viewer):
    names = viewer.preset_names()
    for expected in (
        "CT brain (W 80 L 40)",
        "CT bone (W 2000 L 500)",
        "CT lung (W 1500 L -600)",
        "CT soft tissue (W 400 L 50)",
    ):
        assert expected in names
    assert any(name.startswith("Auto (") for name in names)
    with qtbot.waitSignal(viewer.render_options_changed):
        viewer.choose_preset("CT lung")
    assert viewer.window == (-600.0, 1500.0) and viewer.render_options()["window"] == [-600.0, 1500.0]
    np.testing.assert_array_equal(_shown_pixels(viewer), viewer._volume.windowed(6, (-600, 1500)))
    viewport = viewer.view.viewport()
    start = QPoint(200, 200)
    qtbot.mousePress(viewport, Qt.MouseButton.RightButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(viewport, start + QPoint(10 * step, 4 * step))
    qtbot.mouseRelease(viewport, Qt.MouseButton.RightButton, pos=start + QPoint(50, 20))
    center, width = viewer.window
    assert width > 1500 and center > -600  # right: wider; down: higher level
    assert viewer.window_combo.currentText() == "Custom"
    viewer.width_spin.setValue(80)
    viewer.center_spin.setValue(40)
    assert viewer.window == (40.0, 80.0) and viewer.window_combo.currentText() == "CT brain (W 80 L 40)"


def test_patient_data_is_hidden_until_asked_for(viewer):
    shown = viewer.visible_tag_text()
    assert "Modality: CT" in shown
    assert PATIENT_NAME not in shown and "SYN-0042" not in shown and "20240102" not in shown
    assert "Synthetic CT" not in shown  # a series description is free text: hidden like the names (PS3.15)
    assert PATIENT_NAME not in viewer.info.text()
    viewer.show_patient.setChecked(True)
    assert f"PatientName: {PATIENT_NAME}" in viewer.visible_tag_text()
    assert "SeriesDescription: Synthetic CT" in viewer.visible_tag_text()
    viewer.show_patient.setChecked(False)
    assert PATIENT_NAME not in viewer.visible_tag_text()


def test_regions_and_heat_map_show_on_their_slice_only(qtbot, viewer):
    verdict = Verdict(
        case_id=1,
        source=VerdictSource.OFFLINE,
        anomalous=True,
        score=0.9,
        score_source=ScoreSource.OFFLINE_CALIBRATED,
        details={"slice": 3},
        regions=[
            Region(10, 20, 40, 50, score=0.9, label="lesion", detail={"slice": 3}),
            Region(5, 5, 15, 15, label="other", detail={"slice": 9}),
        ],
    )
    heat = np.zeros((96, 128), np.float32)
    heat[20:50, 10:40] = 1.0
    viewer.show_verdict(verdict, heat)
    assert viewer.finding_slices() == [3, 9] and viewer.findings_label.text() == "Findings on slice 4, 10 (G)"
    assert viewer.visible_regions() == [] and not viewer.heat_visible()
    viewer.next_finding()  # G: from slice 7 to the next finding, wrapping to slice 4 (index 3)
    assert viewer.current_slice == 9
    assert [r.label for r in viewer.visible_regions()] == ["other"] and not viewer.heat_visible()
    viewer.activateWindow()
    viewer.view.setFocus()
    qtbot.waitUntil(viewer.view.hasFocus, timeout=2000)
    qtbot.keyClick(viewer.view, Qt.Key.Key_G)  # the toolbar shortcut, from the image area
    assert viewer.current_slice == 3
    assert [r.label for r in viewer.visible_regions()] == ["lesion"] and viewer.heat_visible()
    _, rect = viewer.region_items[0]
    assert rect.rect().getCoords() == (10, 20, 40, 50)  # slice pixels, under the image's transform
    viewer.action_regions.setChecked(False)
    assert viewer.visible_regions() == []


def test_colour_multiframe_has_no_window_and_same_case_keeps_state(qtbot, registry):
    loaded = registry.modality("dicom").read(bundled("examples_ybr_color.dcm"))
    viewer = DicomViewer()
    qtbot.addWidget(viewer)
    viewer.show_case(loaded, DicomViewer.prepare_display(loaded))
    assert viewer.render_options() == {"slice": 15}
    assert not viewer.window_combo.isEnabled() and not viewer.width_spin.isEnabled()
    viewer.set_slice(20)
    with qtbot.waitSignal(viewer.render_options_changed):  # the prompt was composed for slice 16
        viewer.show_case(loaded, None)
    assert viewer.current_slice == 20
    viewer.clear()
    assert viewer.render_options() == {}
