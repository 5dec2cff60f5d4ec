"""Time-series figures: load time, viewer interaction rate, VLM plot rendering, detector quality on NAB.

Run under a display (CI-like):
    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/time_series.py

* Load: a 1 M-sample series (timestamp + 2 columns) written here as CSV and as Parquet, read with
  the plugin's reader (median of a few runs).
* Viewer: the real `TimeSeriesViewer` (pyqtgraph, peak downsampling, clip to view) showing the 1 M
  series; pans and zooms per second, each followed by a synchronous repaint.
* Plot images: `render` of the 1 M series (split into windows) and of every NAB file.
* NAB: the streaming detector on all 58 files of ../shared/data/nab, scored with NAB's rules
  (standard profile; threshold optimised over the corpus as NAB's optimizer does, and also at the
  detector's own fixed 0.5 threshold), plus event-level range precision/recall/F1 of the ranges
  the offline verdict reports; per-group breakdown.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")

import numpy as np  # noqa: E402

PUBLISHED = "published NAB standard scores: ARTime 74.9, Numenta HTM 70.1, windowed Gaussian 39.6, random ~11"


def _plugin_module(name: str):
    return importlib.import_module(f"plugins.timeseries_modality.{name}")


def write_million(folder: Path, n: int = 1_000_000) -> tuple[Path, Path]:
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.arange(n)
    a = 50 + 10 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.5, n)
    a[700_000:700_020] += 25
    b = np.cumsum(rng.normal(0, 0.01, n))
    b[rng.choice(n, 500, replace=False)] = np.nan
    frame = pd.DataFrame(
        {"timestamp": pd.Timestamp("2025-01-01") + pd.to_timedelta(t, unit="s"), "temperature": a, "pressure": b}
    )
    csv, parquet = folder / "million.csv", folder / "million.parquet"
    frame.to_csv(csv, index=False, date_format="%Y-%m-%d %H:%M:%S", float_format="%.5f")
    frame.to_parquet(parquet)
    return csv, parquet


def bench_load(plugin, csv: Path, parquet: Path, runs: int):
    print("\n== Load (1 M samples, timestamp + 2 value columns)")
    loaded = None
    for path in (csv, parquet):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            loaded = plugin.read(path)
            times.append(time.perf_counter() - started)
        size = path.stat().st_size / 1e6
        print(
            f"{path.suffix[1:]:8s} {size:7.1f} MB  read {statistics.median(times):6.2f} s (median of {runs}, "
            f"min {min(times):.2f})  -> {loaded.data.length} samples, NaN {loaded.metadata['nan_counts']}"
        )
    return loaded


def bench_viewer(loaded, seconds: float = 4.0) -> None:
    from PySide6.QtWidgets import QApplication

    from plugins.timeseries_modality.viewer import TimeSeriesViewer

    print("\n== Viewer interaction (real pyqtgraph widget, 1 M samples x 2 columns, 1280x720)")
    app = QApplication.instance() or QApplication([])
    viewer = TimeSeriesViewer()
    viewer.resize(1280, 720)
    viewer.show()
    app.processEvents()
    started = time.perf_counter()
    display = TimeSeriesViewer.prepare_display(loaded)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    viewer.show_case(loaded, display)
    app.processEvents()
    viewer.graphics.repaint()
    shown = time.perf_counter() - started
    print(f"prepare_display (worker) {prepared * 1000:.0f} ms, show_case + first paint {shown * 1000:.0f} ms")
    plot = viewer.plots[0]
    x = display.x
    full = (float(x[0]), float(x[-1]))

    def run(label: str, step) -> None:
        plot.setXRange(*full, padding=0)
        app.processEvents()
        count = 0
        frame_times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            step(count)
            app.processEvents()
            viewer.graphics.repaint()
            frame_times.append(time.perf_counter() - t0)
            count += 1
        rate = count / sum(frame_times)
        print(
            f"{label:34s} {rate:6.1f} /s  (median {statistics.median(frame_times) * 1000:.1f} ms, "
            f"worst {max(frame_times) * 1000:.1f} ms, {count} steps)"
        )

    def pan(k: int) -> None:
        (lo, hi), _ = plot.viewRange()
        shift = (hi - lo) * (0.1 if (k // 20) % 2 == 0 else -0.1)
        plot.setXRange(lo + shift, hi + shift, padding=0)

    def zoom(k: int) -> None:
        (lo, hi), _ = plot.viewRange()
        factor = 0.8 if (k // 12) % 2 == 0 else 1.25
        middle, half = (lo + hi) / 2, (hi - lo) / 2 * factor
        plot.setXRange(middle - half, middle + half, padding=0)

    run("pan, whole series in view", pan)
    run("zoom in/out from the whole series", zoom)
    span = full[1] - full[0]
    plot.setXRange(full[0] + 0.3 * span, full[0] + 0.31 * span, padding=0)
    app.processEvents()
    (lo, hi), _ = plot.viewRange()

    def pan_zoomed(k: int) -> None:
        width = hi - lo
        offset = width * 0.1 * (k % 40 if (k // 40) % 2 == 0 else 40 - k % 40)
        plot.setXRange(lo + offset, hi + offset, padding=0)

    run("pan, 1 % of the series in view", pan_zoomed)
    viewer.close()


def bench_render(plugin, loaded, nab_cases) -> None:
    print("\n== VLM plot images (Pillow)")
    started = time.perf_counter()
    views = plugin.render(loaded, {})
    elapsed = time.perf_counter() - started
    print(
        f"1 M samples x 2 columns: {len(views)} images {views[0].image.shape[1]}x{views[0].image.shape[0]} "
        f"in {elapsed * 1000:.0f} ms ({elapsed / len(views) * 1000:.0f} ms per image)"
    )
    if nab_cases:
        images = 0
        started = time.perf_counter()
        for _, _, case in nab_cases:
            images += len(plugin.render(case, {}))
        elapsed = time.perf_counter() - started
        print(f"NAB, 58 files: {images} images in {elapsed:.2f} s ({elapsed / images * 1000:.1f} ms per image)")


def bench_nab(plugin, nab_cases, options: dict, title: str, breakdown: bool) -> None:
    from inspector.plugins import OfflineContext

    nab = _plugin_module("nab_scoring")
    print(
        f"\n== Detector quality on NAB, {title} ({len(nab_cases)} files, "
        f"{sum(c.data.length for _, _, c in nab_cases)} samples, "
        f"{sum(len(c.data.labels) for _, _, c in nab_cases)} windows)"
    )
    context = OfflineContext(
        references=list,
        image_detector=lambda: None,
        progress=lambda f: None,
        is_cancelled=lambda: False,
        options=options,
    )
    profile = nab.PROFILES["standard"]
    files, counts = [], defaultdict(lambda: [0, 0, 0, 0])
    started = time.perf_counter()
    for group, name, case in nab_cases:
        outcome = plugin.offline_detect(case, context)
        scores = np.asarray(outcome.details["sample_scores"])
        assert outcome.details["sample_scores_step"] == 1
        windows = [(w.start, w.end) for w in case.data.labels]
        files.append(nab.sweep_file(name, group, scores, windows, profile))
        ranges = [tuple(r.detail["samples"]) for r in outcome.regions]
        found = nab.range_f1(ranges, windows)
        for key in (group, "all"):
            counts[key] = [a + b for a, b in zip(counts[key], found, strict=True)]
    elapsed = time.perf_counter() - started
    print(f"offline_detect on all files: {elapsed:.2f} s")
    perfect = sum(f.n_windows for f in files)
    null = nab.null_total(files, profile)
    threshold, total = nab.sweep_thresholds(files, profile).best()
    fixed = [nab.score_file(f, 0.5, profile) for f in files]
    at_best = [nab.score_file(f, threshold, profile) for f in files]
    score = nab.normalised(total, null, perfect)
    print(
        f"NAB standard score, threshold optimised over the corpus (as NAB): {score:.1f}"
        f"  (threshold {threshold:.3f}; raw {total:.2f}, null {null:.2f}, perfect {perfect})"
    )
    fixed_raw = sum(s.raw for s in fixed)
    print(
        f"NAB standard score at the detector's fixed threshold 0.5:          "
        f"{nab.normalised(fixed_raw, null, perfect):.1f}"
    )
    for other in ("reward_low_FP_rate", "reward_low_FN_rate"):
        weights = nab.PROFILES[other]
        swept = [nab.sweep_file(f.name, f.group, f.scores, f.windows, weights) for f in files]
        other_null = nab.null_total(swept, weights)
        _, other_total = nab.sweep_thresholds(swept, weights).best()
        print(f"NAB {other} score (optimised threshold): {nab.normalised(other_total, other_null, perfect):.1f}")
    p, r, f1 = nab.prf(*counts["all"])
    print(
        f"range precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}  ({counts['all'][1]} ranges reported; a range is "
        f"correct when it overlaps a window, a window found when a range overlaps it)"
    )
    print(PUBLISHED)
    if not breakdown:
        return
    print(
        f"\n{'group':24s} {'files':>5s} {'win':>4s} {'TP':>4s} {'FN':>4s} {'FP rows':>7s} {'raw':>8s} "
        f"{'NAB':>6s} {'rangeP':>6s} {'rangeR':>6s} {'F1':>5s}   (NAB columns at the corpus threshold)"
    )
    groups = sorted({f.group for f in files})
    for group in groups:
        members = [f for f in files if f.group == group]
        scored = [s for s in at_best if s.group == group]
        raw = sum(s.raw for s in scored)
        g_perfect = sum(f.n_windows for f in members)
        g_null = nab.null_total(members, profile)
        norm = nab.normalised(raw, g_null, g_perfect) if g_perfect else float("nan")
        p, r, f1 = nab.prf(*counts[group])
        print(
            f"{group:24s} {len(members):5d} {g_perfect:4d} {sum(s.tp for s in scored):4d} "
            f"{sum(s.fn for s in scored):4d} {sum(s.fp for s in scored):7d} {raw:8.2f} "
            f"{'   n/a' if np.isnan(norm) else f'{norm:6.1f}'} {p:6.3f} {r:6.3f} {f1:5.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-gui", action="store_true")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per viewer interaction test")
    args = parser.parse_args()
    from inspector.paths import shared_data_dir
    from inspector.plugins import discover

    plugin = discover().modality("time_series")
    data = shared_data_dir()
    nab_cases = []
    if data is not None and (data / "nab" / "data").is_dir():
        for path in sorted((data / "nab" / "data").glob("*/*.csv")):
            nab_cases.append((path.parent.name, path.name, plugin.read(path)))
    else:
        print("NAB data not found (../shared/data/nab): the NAB part is skipped")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        csv, parquet = write_million(Path(folder))
        print(f"wrote the 1 M-sample CSV and Parquet in {time.perf_counter() - started:.1f} s")
        loaded = bench_load(plugin, csv, parquet, args.runs)
    if not args.skip_gui:
        bench_viewer(loaded, args.seconds)
    bench_render(plugin, loaded, nab_cases)
    from inspector.plugins import OfflineContext

    context = OfflineContext(
        references=list, image_detector=lambda: None, progress=lambda f: None, is_cancelled=lambda: False
    )
    started = time.perf_counter()
    outcome = plugin.offline_detect(loaded, context)
    print(
        f"\n== Detector on the 1 M-sample series: {time.perf_counter() - started:.2f} s, "
        f"{len(outcome.regions)} ranges, first {outcome.regions[0].detail['samples'] if outcome.regions else None}; "
        f"sample_scores pooled to {len(outcome.details['sample_scores'])} values "
        f"(step {outcome.details['sample_scores_step']})"
    )
    if nab_cases:
        bench_nab(plugin, nab_cases, {}, "default settings", breakdown=True)
        bench_nab(
            plugin,
            nab_cases,
            {"detector": {"exclude_flagged": False}},
            "variant: flagged samples kept in the reference (more masking)",
            breakdown=False,
        )


if __name__ == "__main__":
    main()
