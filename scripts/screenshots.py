"""Take the README screenshots of the real window on the demo project (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Shots: an offline-detector verdict with its heat map on every modality's demo case, and a VLM
verdict (the VLM is the loopback OpenAI-compatible test server answering with a scripted verdict:
no hosted model is reachable here, and the screenshot says so in its status bar). No API key
exists in the process, so none can appear in a screenshot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def wait_until(app, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state")


def save_window(window, path: Path) -> None:
    """Grab the window; a VTK viewer's content is read from its render window and painted in."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter

    from views.viewer_api import array_to_qimage

    pixmap = window.grab()
    viewer = window._viewers.get(window._current.case.modality, (None, None))[1] if window._current else None
    if viewer is not None and hasattr(viewer, "grab_rgb") and viewer.vtk_widget.isVisible():
        rgb = viewer.grab_rgb()
        origin = viewer.vtk_widget.mapTo(window, QPoint(0, 0))
        painter = QPainter(pixmap)
        painter.drawImage(origin, array_to_qimage(rgb).scaled(viewer.vtk_widget.size()))
        painter.end()
    pixmap.save(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="anomalens-shots-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ANOMALENS_HOME"] = str(tmp)
        os.environ.pop("OPENAI_API_KEY", None)
        from PySide6.QtWidgets import QApplication

        from inspector.demo import build_demo_project
        from inspector.paths import resources_dir
        from inspector.plugins import discover
        from inspector.settings import AppSettings, EndpointSettings
        from tests.loopback_vlm import LoopbackVLM, Reply
        from views.main_window import MainWindow

        app = QApplication.instance() or QApplication([])
        app.setStyleSheet((resources_dir() / "style.qss").read_text(encoding="utf-8"))
        registry = discover()
        project = tmp / "demo.anomalens"
        build_demo_project(project, registry).close()
        window = MainWindow(AppSettings(), registry, settings_file=tmp / "settings.json")
        window.resize(1600, 960)
        window.show()
        window.open_project(project)
        finished: list[int] = []
        window.inspection_finished.connect(finished.append)
        cases = {c.name: c for c in window.store.cases()}

        def show(name: str) -> int:
            case_id = cases[name].id
            window.case_browser.select_case(case_id)
            wait_until(
                app,
                lambda: (
                    window._current is not None
                    and window._current.case.id == case_id
                    and window._current.prompt is not None
                ),
            )
            return case_id

        def inspect() -> None:
            finished.clear()
            window.inspect_current()
            wait_until(app, lambda: bool(finished), timeout=300)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.02)

        # 1. Offline detector verdict with heat map on the crack case.
        show("panel_04_crack.png")
        inspect()
        window.grab().save(str(args.out / "main_window_offline.png"))

        # 2. Offline verdicts on the other modalities' demo cases (the point cloud's VTK view is read
        # with vtkWindowToImageFilter and painted into the grab, which cannot read OpenGL content).
        shots = [
            ("head_ct_focus", "dicom_offline.png"),
            ("coolant_temperature.csv", "time_series_offline.png"),
            ("walkway_clip_cart.mp4", "video_offline.png"),
            ("panel_dented.ply", "point_cloud_offline.png"),
        ]
        for name, shot in shots:
            show(name)
            inspect()
            save_window(window, args.out / shot)

        # 2. VLM verdict on the blowhole case from the loopback server.
        answer = json.dumps(
            {
                "anomalous": True,
                "confidence": 0.86,
                "reason": "A dark, round pit about 20 px across sits on the brick face below the centre; the "
                "normal standards allow only fine uniform grain, and the references show none.",
                "regions": [],
            }
        )
        with LoopbackVLM(responder=lambda request: Reply(answer, p_anomalous=0.94)) as server:
            window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm (test server)"))
            show("panel_05_blowhole.png")
            inspect()
            window.grab().save(str(args.out / "main_window_vlm.png"))

            # 3. Set-of-Mark on the same case: hybrid marks (the offline heat map proposes, segments
            # outline); the server answers with the mark the detector rates highest, and the viewer
            # fills that mask. The marked image as sent is saved too.
            window.set_localization({"method": "hybrid"})
            window.prompt_panel.set_of_mark.setChecked(True)
            wait_until(
                app,
                lambda: (
                    window._current is not None
                    and window._current.prompt is not None
                    and bool(window._current.prompt.marks)
                ),
                timeout=300,
            )
            prompt = window._current.prompt
            best = max(prompt.marks, key=lambda m: m.get("offline_peak") or 0.0)
            marked = next(img for img in prompt.images if img.role == "marked")
            (args.out / "set_of_mark_prompt.png").write_bytes(marked.png)
            answer = json.dumps(
                {
                    "anomalous": True,
                    "confidence": 0.86,
                    "reason": "A dark, round pit on the brick face.",
                    "marks": [{"mark": best["mark"], "reason": "dark round pit, not in the references"}],
                }
            )
            inspect()
            window.grab().save(str(args.out / "set_of_mark.png"))
        window.force_close = True
        window.close()
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()
