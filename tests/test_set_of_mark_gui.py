"""The whole Set-of-Mark flow in the real window, against the loopback OpenAI-compatible server.

Set-of-Mark is switched on in the prompt panel; the prompt gets the marked image; the server (a
hosted model cannot be reached from the test machine) answers with the mark that covers the
defect; the viewer then highlights that mark's mask on the case, and nothing else.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from inspector.inspection import InspectionService
from inspector.localization.masks import decode_mask
from inspector.model import Profile
from inspector.plugins import discover
from inspector.settings import AppSettings, EndpointSettings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM
from views.main_window import MainWindow

pytestmark = pytest.mark.gui


def _project(tmp_path):
    """A project with one profile, one reference and one case with a dark blot at a known place."""
    image = textured_image(7, (240, 320)).astype(np.int16)
    yy, xx = np.mgrid[:240, :320]
    defect = ((yy - 150) / 26) ** 2 + ((xx - 90) / 34) ** 2 <= 1.0
    image[defect] = 20
    case_path = tmp_path / "plate.png"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(case_path)
    ref_path = tmp_path / "ref.png"
    Image.fromarray(textured_image(8, (240, 320))).save(ref_path)
    project = tmp_path / "som.anomalens"
    store = ProjectStore(project)
    service = InspectionService(store, discover())
    profile = store.save_profile(Profile(name="Plate", class_name="steel plate"))
    service.add_reference_file(profile.id, ref_path)
    case, _ = service.import_file(case_path, profile.id)
    service.close()
    store.close()
    return project, case.id, defect


def test_set_of_mark_flow_highlights_the_chosen_mask(qtbot, tmp_path):
    project, case_id, defect = _project(tmp_path)
    reply = {"text": ""}
    with LoopbackVLM(responder=lambda request: reply["text"]) as server:
        window = MainWindow(AppSettings(), discover(), settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        assert window.open_project(project)
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=20))
        with qtbot.waitSignal(window.case_shown, timeout=30000, check_params_cb=lambda shown: shown == case_id):
            window.case_browser.select_case(case_id)
        assert window.prompt_panel.image_count() == 2

        # Switch Set-of-Mark on: the prompt is recomposed with the marked image third.
        with qtbot.waitSignal(window.case_shown, timeout=30000):
            window.prompt_panel.set_of_mark.setChecked(True)
        qtbot.waitUntil(
            lambda: window._current.prompt is not None and bool(window._current.prompt.marks), timeout=30000
        )
        prompt = window._current.prompt
        assert [img.role for img in prompt.images] == ["reference", "query", "marked"]
        assert window.prompt_panel.image_count() == 3
        assert "numbered marks" in window.prompt_panel.text.toPlainText()

        # The server answers with the mark over the blot (found from the prompt's own map).
        def overlap(record) -> float:
            x0, y0, x1, y1 = record["bbox"]
            full = np.zeros_like(defect)
            full[y0:y1, x0:x1] = decode_mask(record["mask"])
            return (full & defect).sum() / max(1, (full | defect).sum())

        chosen = max(prompt.marks, key=overlap)
        assert overlap(chosen) > 0.5
        reply["text"] = json.dumps(
            {
                "anomalous": True,
                "confidence": 0.85,
                "reason": "dark blot",
                "marks": [{"mark": chosen["mark"], "reason": "dark blot on the plate"}],
            }
        )
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5000)
        with qtbot.waitSignal(window.inspection_finished, timeout=60000):
            qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        request = server.chat_requests[-1]
        assert request.image_sizes == [(320, 240), (320, 240), (320, 240)]
        assert window.verdict_panel.badge.text() == "ANOMALOUS"
        explanation = window.verdict_panel.explanation.toPlainText()
        assert f"the model chose #{chosen['mark']}" in explanation and "dark blot on the plate" in explanation

        # The viewer highlights exactly the chosen mark's mask.
        viewer = window.viewer_for("image")
        assert len(viewer.mask_items) == 1
        shown = viewer.mask_items[0]
        highlighted = shown.case_mask(defect.shape)
        expected = np.zeros_like(defect)
        x0, y0, x1, y1 = chosen["bbox"]
        expected[y0:y1, x0:x1] = decode_mask(chosen["mask"])
        assert (highlighted == expected).mean() > 0.99
        assert (highlighted & defect).sum() / (highlighted | defect).sum() > 0.5
        # And it is drawn: grabbed with the Regions overlay on and off, pixels deep inside the mask
        # turn redder, pixels in the box but well outside the mask do not change.
        on = _grab_case_pixels(viewer, defect.shape)
        viewer.action_regions.setChecked(False)
        off = _grab_case_pixels(viewer, defect.shape)
        viewer.action_regions.setChecked(True)
        from scipy import ndimage

        deep_inside = ndimage.binary_erosion(highlighted, iterations=4)
        box = np.zeros_like(highlighted)
        box[y0:y1, x0:x1] = True
        far_outside = box & ~ndimage.binary_dilation(highlighted, iterations=4)
        redder = (on[..., 0].astype(int) - on[..., 2]) - (off[..., 0].astype(int) - off[..., 2])
        assert np.median(redder[deep_inside]) > 20
        if far_outside.any():
            assert np.median(np.abs(on.astype(int) - off)[far_outside]) <= 3
        window.force_close = True
        window.close()


def _grab_case_pixels(viewer, shape) -> np.ndarray:
    """The viewer's rendering of the case at 1:1, as an (h, w, 3) array in case pixels."""
    from PySide6.QtCore import QPoint

    viewer.view.set_zoom(1.0)
    viewer.view.centerOn(shape[1] / 2, shape[0] / 2)
    origin = viewer.view.mapFromScene(0, 0)
    image = (
        viewer.view.viewport()
        .grab()
        .toImage()
        .convertToFormat(viewer.view.viewport().grab().toImage().Format.Format_RGB888)
    )
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine())[:, : width * 3]
    pixels = data.reshape(height, width, 3)
    out = np.zeros((*shape, 3), np.uint8)
    x, y = QPoint(origin).x(), QPoint(origin).y()
    h = min(shape[0], height - max(0, y))
    w = min(shape[1], width - max(0, x))
    assert x >= 0 and y >= 0 and h == shape[0] and w == shape[1], "the case does not fit the viewport at 1:1"
    out[:h, :w] = pixels[y : y + h, x : x + w]
    return out
