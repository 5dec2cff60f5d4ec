"""Point-cloud figures: load time, viewer frame rate, depth-render export, offline-detector quality.

Run under a display (CI-like):

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/point_cloud.py

No real point-cloud data set is available offline, so every cloud is synthetic: a rounded
bracket-like part with a boss (the plugin's `synthetic` module), normal ones varying in pose,
scale, shape and point count, defective ones with a dent or a bump of known extent.

1. Load: a 1 M-point cloud (with colours) written in every supported format, read by the plugin.
2. Viewer: the real `PointCloudViewer` (QVTKRenderWindowInteractor, Mesa under xvfb) with 1 M
   points; renders per second while the camera turns, full cloud and during a mouse drag
   (where the viewer draws its interaction subset).
3. Export: depth renders of a 200 k-point cloud, 6 views, per backend and layout.
4. Detector: `offline_detect` against `reference_images` montages of normal parts (as the app
   does), on normal vs dented/bumped parts: image AUROC, point AUROC (per-point scores from the
   heat map vs the defect's points), accuracy at the calibrated threshold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")

import numpy as np  # noqa: E402

from inspector.plugins import discover  # noqa: E402
from tests.test_point_cloud_formats import (  # noqa: E402
    plugin_module,
    write_pcd,
    write_ply,
    write_xyz,
    write_xyz_tiff,
)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_load(n: int, folder: Path, repeat: int) -> None:
    plugin = discover().modality("point_cloud")
    part = plugin_module("synthetic").make_part(1, n_points=n)
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    side = int(np.ceil(np.sqrt(2 * n)))
    files = {
        "PLY binary little endian": write_ply(folder / "le.ply", part.points, colors, part.normals),
        "PLY binary big endian": write_ply(
            folder / "be.ply", part.points, colors, part.normals, fmt="binary_big_endian"
        ),
        "PLY ASCII": write_ply(folder / "ascii.ply", part.points, colors, part.normals, fmt="ascii"),
        "PCD binary": write_pcd(folder / "bin.pcd", part.points, colors, part.normals),
        "PCD binary_compressed (LZF)": write_pcd(
            folder / "lzf.pcd", part.points, colors, part.normals, data="binary_compressed"
        ),
        "PCD ASCII": write_pcd(folder / "ascii.pcd", part.points, colors, part.normals, data="ascii"),
        "XYZ text (x y z r g b)": write_xyz(folder / "scan.xyz", part.points, colors),
        "MVTec 3D-AD XYZ TIFF": write_xyz_tiff(folder / "mvtec", part.points, (side, side), colors),
    }
    np.save(folder / "cloud.npy", part.points)
    files["NPY (N x 3 float32)"] = folder / "cloud.npy"
    np.savez(folder / "cloud.npz", points=part.points, colors=colors, normals=part.normals)
    files["NPZ (points, colors, normals)"] = folder / "cloud.npz"
    print(f"\n== Load time, {n:,} points (best of {repeat}) ==")
    print(f"{'format':32s} {'MB':>7s} {'seconds':>8s} {'M points/s':>11s}")
    for label, path in files.items():
        seconds = _best(lambda p=path: plugin.read(p), repeat if "ASCII" not in label else 1)
        loaded = plugin.read(path)
        assert loaded.metadata["points"] == n, (label, loaded.metadata["points"])
        mb = path.stat().st_size / 1e6
        print(f"{label:32s} {mb:7.1f} {seconds:8.3f} {n / seconds / 1e6:11.2f}")


def bench_viewer(n: int, seconds: float) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from inspector.model import LoadedCase
    from plugins.pointcloud_modality.viewer import PointCloudViewer

    app = QApplication.instance() or QApplication([])
    discover()
    cloud, _ = plugin_module("cloud").make_cloud(plugin_module("synthetic").make_part(2, n_points=n).points)
    loaded = LoadedCase("point_cloud", cloud, {"format": "synthetic"})
    started = time.perf_counter()
    display = PointCloudViewer.prepare_display(loaded)
    prepare_s = time.perf_counter() - started
    viewer = PointCloudViewer()
    viewer.resize(800, 600)
    viewer.show()
    QTest.qWaitForWindowExposed(viewer)
    started = time.perf_counter()
    viewer.show_case(loaded, display)
    app.processEvents()
    show_s = time.perf_counter() - started
    camera = viewer.renderer.GetActiveCamera()
    frames, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or frames < 3:
        camera.Azimuth(3)
        viewer.render_window.Render()
        app.processEvents()
        frames += 1
    full_fps = frames / (time.perf_counter() - started)
    # a real mouse drag: the trackball style renders on every move, with the interaction subset
    widget = viewer.vtk_widget
    centre = widget.rect().center()
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, pos=centre)
    drag_points = viewer.mapper.GetInput().GetNumberOfPoints()
    moves, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        QTest.mouseMove(widget, centre + QPoint((moves % 40) * 4 - 80, 0))
        app.processEvents()
        moves += 1
    drag_fps = moves / (time.perf_counter() - started)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=centre)
    info = viewer.render_window.ReportCapabilities()
    renderer = next((line.split(":", 1)[1].strip() for line in info.splitlines() if "renderer string" in line), "?")
    print(f"\n== Viewer, {n:,} points, 800x600 VTK widget ({renderer}) ==")
    print(f"prepare_display (worker thread)       {prepare_s:7.2f} s")
    print(f"show_case + first frame (GUI thread)  {show_s:7.2f} s")
    print(f"rotating, full cloud                  {full_fps:7.2f} renders/s")
    print(f"{f'mouse drag, {drag_points:,}-point subset':38s}{drag_fps:7.2f} renders/s (full cloud on release)")
    viewer.close()


def bench_export(n: int, repeat: int) -> None:
    plugin = discover().modality("point_cloud")
    raster = plugin_module("raster")
    cloud, _ = plugin_module("cloud").make_cloud(plugin_module("synthetic").make_part(3, n_points=n).points)
    from inspector.model import LoadedCase

    print(f"\n== Depth-render export, {n:,} points, 6 views (median of {repeat}) ==")
    print(f"VTK EGL off-screen available: {raster.vtk_available()}")
    for backend in ("vtk", "numpy"):
        if backend == "vtk" and not raster.vtk_available():
            continue
        os.environ["ANOMALENS_POINT_RENDERER"] = "numpy" if backend == "numpy" else ""
        for label, options in (
            ("grid 6 x 320 px", {}),
            ("separate 6 x 320 px", {"layout": "separate"}),
            ("grid, shaded", {"shaded": True}),
            ("grid 6 x 224 px (detector)", {"size": 224}),
        ):
            times = []
            for _ in range(repeat):
                loaded = LoadedCase("point_cloud", plugin_module("cloud").PointCloud(cloud.points), {})
                started = time.perf_counter()
                views = plugin.render(loaded, options)  # includes pose normalisation
                times.append(time.perf_counter() - started)
            used = views[0].view_map.params["renderer"]
            print(f"{backend:6s} {label:28s} {statistics.median(times):6.3f} s  (renderer {used})")
    os.environ.pop("ANOMALENS_POINT_RENDERER", None)


def bench_detector(n_refs: int, n_test: int, plain_depth: bool = False) -> None:
    from inspector.detector.offline import OfflineDetector
    from inspector.metrics import auroc
    from inspector.model import LoadedCase
    from inspector.plugins import OfflineContext

    plugin = discover().modality("point_cloud")
    synthetic = plugin_module("synthetic")
    detect = plugin_module("detect")
    detect.OFFLINE_SHADED = not plain_depth

    def case(part) -> LoadedCase:
        cloud, _ = plugin_module("cloud").make_cloud(part.points)
        return LoadedCase("point_cloud", cloud, {"name": "part"})

    started = time.perf_counter()
    refs = [plugin.reference_images(case(synthetic.make_part(1000 + k)))[0][1] for k in range(n_refs)]
    detector = OfflineDetector()
    detector.fit(refs)
    fit_s = time.perf_counter() - started
    context = OfflineContext(
        references=lambda: [], image_detector=lambda: detector, progress=lambda f: None, is_cancelled=lambda: False
    )
    labels, scores, decided, point_aurocs, per_case = [], [], [], [], []
    for i in range(n_test):
        for defect in ("", "dent" if i % 2 else "bump"):
            part = synthetic.make_part(5000 + i, defect)
            loaded = case(part)
            started = time.perf_counter()
            outcome = plugin.offline_detect(loaded, context)
            per_case.append(time.perf_counter() - started)
            labels.append(bool(defect))
            scores.append(outcome.score)
            decided.append(outcome.anomalous == bool(defect))
            if defect:
                mont, _ = detect.offline_montage(loaded)
                points = detect.point_scores(outcome.heatmap, mont.index, len(part.points))
                seen = np.isfinite(points)
                if part.defect_mask[seen].any():
                    point_aurocs.append(auroc(points[seen], part.defect_mask[seen]))
    y = np.array(labels)
    s = np.array(scores)
    normals_flagged = float(np.mean([d is False for d, lab in zip(decided, labels, strict=True) if not lab]))
    kind = "plain depth" if plain_depth else "shaded relief (the app's setting)"
    print(
        f"\n== Offline detector on synthetic parts, {kind}: {n_refs} normal references; test {n_test} normal, "
        f"{n_test // 2 + n_test % 2} bumped, {n_test // 2} dented =="
    )
    print(f"image AUROC                      {auroc(s, y):.3f}")
    print(f"point AUROC (mean over defects)  {np.mean(point_aurocs):.3f}  (front-most points of the 6 views)")
    print(f"accuracy at the calibrated 0.5   {np.mean(decided):.3f}  (normals flagged: {normals_flagged:.0%})")
    print(
        f"fit {fit_s:.1f} s (rendering + fitting {n_refs} references); "
        f"per case {statistics.median(per_case):.2f} s median (render + score + map to points)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="cloud size for load and viewer")
    parser.add_argument("--export-points", type=int, default=200_000)
    parser.add_argument("--refs", type=int, default=8)
    parser.add_argument("--test", type=int, default=20, help="normal test parts (as many defective)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per frame-rate measurement")
    parser.add_argument("--only", choices=("load", "viewer", "export", "detector"), action="append")
    parser.add_argument(
        "--compare-depth",
        action="store_true",
        help="also run the detector on plain depth renders (why the app uses relief)",
    )
    args = parser.parse_args()
    parts = args.only or ["load", "viewer", "export", "detector"]
    print(f"Machine: {os.cpu_count()} CPUs; numpy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="anomalens-pc-bench-") as tmp:
        if "load" in parts:
            bench_load(args.points, Path(tmp), args.repeat)
    if "viewer" in parts:
        bench_viewer(args.points, args.seconds)
    if "export" in parts:
        bench_export(args.export_points, args.repeat)
    if "detector" in parts:
        bench_detector(args.refs, args.test)
        if args.compare_depth:
            bench_detector(args.refs, args.test, plain_depth=True)


if __name__ == "__main__":
    main()
