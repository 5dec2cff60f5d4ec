"""DICOM figures: series load time, slice-scrolling rate in the real viewer, offline detector on a slice.

Run under a display (CI-like): `xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/dicom.py`.
A 300-slice 512x512 int16 CT-like series (rescale intercept -1024, shuffled file names, one file
per slice) is written with pydicom first; pydicom's test files hold no such series. Scrolling is
measured in the main window's DICOM viewer dock: each step changes the slice through the same
path the mouse wheel takes and repaints the viewport before the next step, so the figure is slices
actually drawn per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")


def write_series(folder: Path, slices: int, size: int) -> float:
    from plugins.dicom_modality import synthetic

    started = time.perf_counter()
    hu = synthetic.ct_phantom(slices, (size, size), seed=1, lesion_slices=(slices // 2 + 10,))
    synthetic.write_series(folder, hu, spacing=(1.0, 0.7, 0.7))
    return time.perf_counter() - started


def wait_until(app, condition, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met in time")
        app.processEvents()
        time.sleep(0.002)


def load_figures(folder: Path, runs: int) -> dict[str, float]:
    """The plugin reader alone (headers, sort, decode, rescale), best and median of `runs`."""
    from inspector.plugins import discover

    plugin = discover().modality("dicom")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        loaded = plugin.read(folder)
        times.append(time.perf_counter() - started)
    volume = loaded.data
    return {
        "read_best_s": min(times),
        "read_median_s": statistics.median(times),
        "slices": volume.n_slices,
        "voxel_mb": volume.voxels.nbytes / 2**20,
        "dtype": str(volume.voxels.dtype),
    }


def window_figures(folder: Path) -> dict[str, float]:
    """Windowing one 512x512 slice (numpy), the per-slice cost of scrolling and of a window drag."""
    from inspector.plugins import discover

    volume = discover().modality("dicom").read(folder).data
    started = time.perf_counter()
    for k in range(volume.n_slices):
        volume.windowed(k, (40.0 + k, 400.0))
    return {"window_ms_per_slice": (time.perf_counter() - started) * 1000 / volume.n_slices}


def gui_figures(folder: Path, tmp: Path, passes: int) -> dict[str, float]:
    from PySide6.QtWidgets import QApplication

    from inspector.plugins import discover
    from inspector.settings import AppSettings
    from views.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow(AppSettings(), discover(), settings_file=tmp / "settings.json")
    window.resize(1600, 1000)
    window.show()
    wait_until(app, window.isVisible)
    window.open_project(tmp / "bench.anomalens")
    started = time.perf_counter()
    window.add_case_files([str(folder)])
    wait_until(app, lambda: window.case_browser.row_count() == 1)
    imported = time.perf_counter() - started
    case = window.store.cases()[0]
    if case.error:
        raise RuntimeError(case.error)
    shown: list[int] = []
    window.case_shown.connect(shown.append)
    started = time.perf_counter()
    if window.case_browser.current_case_id() == case.id:
        window.show_case(case.id)
    else:
        window.case_browser.select_case(case.id)
    wait_until(app, lambda: bool(shown))
    first_shown = time.perf_counter() - started
    viewer = window.viewer_for("dicom")
    for _ in range(20):
        app.processEvents()
    n = viewer._volume.n_slices
    rates = []
    for _ in range(passes):
        viewer.set_slice(0)
        app.processEvents()
        count_before = viewer.shown_slice_count
        started = time.perf_counter()
        for _ in range(n - 1):
            viewer.view.slice_step.emit(1)  # what one wheel notch emits
            viewer.view.viewport().repaint()  # draw it now, as the next wheel event would wait for it
            app.processEvents()
        elapsed = time.perf_counter() - started
        rates.append((viewer.shown_slice_count - count_before) / elapsed)
    drags = 100
    started = time.perf_counter()
    for step in range(drags):
        viewer._drag_window(3.0, 1.0 if step % 2 else -1.0)
        viewer.view.viewport().repaint()
        app.processEvents()
    drag_rate = drags / (time.perf_counter() - started)
    window.force_close = True
    window.close()
    return {
        "import_s": imported,
        "select_to_shown_s": first_shown,
        "scroll_slices_per_s_best": max(rates),
        "scroll_slices_per_s_median": statistics.median(rates),
        "window_drag_updates_per_s": drag_rate,
        "viewport": f"{viewer.view.viewport().width()}x{viewer.view.viewport().height()}",
    }


def detector_figures(folder: Path, repeats: int) -> dict[str, float]:
    """The offline detector through the plugin: fit on two slice views, score the middle slice."""
    from inspector.detector.offline import OfflineDetector
    from inspector.plugins import OfflineContext, discover

    plugin = discover().modality("dicom")
    loaded = plugin.read(folder)
    volume = loaded.data
    from plugins.dicom_modality.rendering import slice_view

    references = [slice_view(volume, k, volume.window).image for k in (volume.n_slices // 4, 3 * volume.n_slices // 4)]
    detector = OfflineDetector()
    started = time.perf_counter()
    detector.fit(references)
    fit_s = time.perf_counter() - started
    context = OfflineContext(
        references=lambda: [], image_detector=lambda: detector, progress=lambda f: None, is_cancelled=lambda: False
    )
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        outcome = plugin.offline_detect(loaded, context)
        times.append(time.perf_counter() - started)
    return {
        "fit_2_refs_s": fit_s,
        "score_slice_best_s": min(times),
        "score_slice_median_s": statistics.median(times),
        "scored_slice": outcome.details["slice"],
        "score": outcome.score,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="repeats of the load and detector timings")
    parser.add_argument("--passes", type=int, default=2, help="full scroll passes through the series")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anomalens-dicom-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ANOMALENS_HOME"] = str(tmp / "home")
        folder = tmp / "ct_series"
        figures: dict[str, object] = {"series": f"{args.slices} x {args.size}x{args.size} int16 CT, one file per slice"}
        figures["write_s"] = write_series(folder, args.slices, args.size)
        figures["series_mb"] = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        figures.update(load_figures(folder, args.runs))
        figures.update(window_figures(folder))
        figures.update(gui_figures(folder, tmp, args.passes))
        figures.update(detector_figures(folder, args.runs))
    print(
        f"DICOM benchmark: {figures['series']} ({figures['series_mb']:.0f} MB on disk, written in "
        f"{figures['write_s']:.1f} s)"
    )
    print(
        f"  load (plugin read: headers, sort, decode, rescale): best {figures['read_best_s']:.2f} s, "
        f"median {figures['read_median_s']:.2f} s -> {figures['slices']} slices, "
        f"{figures['voxel_mb']:.0f} MB {figures['dtype']} in memory"
    )
    print(
        f"  import into a project (hash + read) in the window: {figures['import_s']:.2f} s; "
        f"select -> shown: {figures['select_to_shown_s']:.2f} s"
    )
    print(f"  window/level of one slice (numpy): {figures['window_ms_per_slice']:.2f} ms")
    print(
        f"  slice scrolling in the viewer ({figures['viewport']} viewport, repaint per slice): "
        f"best {figures['scroll_slices_per_s_best']:.0f}, median {figures['scroll_slices_per_s_median']:.0f} "
        "slices/s"
    )
    print(f"  window drag: {figures['window_drag_updates_per_s']:.0f} updates/s")
    print(
        f"  offline detector: fit on 2 slice views {figures['fit_2_refs_s']:.2f} s; score one slice best "
        f"{figures['score_slice_best_s']:.2f} s, median {figures['score_slice_median_s']:.2f} s "
        f"(slice {figures['scored_slice']}, score {figures['score']:.2f})"
    )
    if args.json:
        print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
