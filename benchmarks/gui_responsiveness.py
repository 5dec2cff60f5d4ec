"""GUI figures: cold start to window shown, opening a 4096x4096 PNG, event-loop stalls during a VLM call.

Run under a display (CI-like: `xvfb-run -a .venv/bin/python benchmarks/gui_responsiveness.py`).
The VLM is the loopback OpenAI-compatible server from tests/ with a fixed simulated latency: the
figure is about our client and window, not about a model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")


def cold_start(runs: int, home: Path) -> list[float]:
    from inspector.demo import build_demo_project
    from inspector.plugins import discover

    project = home / "demo.anomalens"
    build_demo_project(project, discover()).close()
    env = dict(os.environ, ANOMALENS_HOME=str(home))
    times = []
    for _ in range(runs):
        started = time.time()
        out = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "_startup_probe.py"), str(project)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        shown = [line for line in out.stdout.splitlines() if line.startswith("SHOWN")]
        if not shown:
            raise RuntimeError(f"start-up probe failed: {out.stderr[-2000:]}")
        times.append(float(shown[0].split()[1]) - started)
    return times


def large_png(tmp: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:4096, :4096].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + rng.normal(0, 8, (4096, 4096))
    image = np.clip(np.stack([base, base * 0.9, base * 0.8], axis=2), 0, 255).astype(np.uint8)
    path = tmp / "large_4096.png"
    Image.fromarray(image).save(path)
    return path


def open_large(window, qtbot_wait, path: Path) -> dict[str, float]:
    """Import (read, hash, embed) and then show the image in the viewer."""
    from inspector.plugins import discover

    service = window.service
    started = time.perf_counter()
    case, _ = service.import_file(path)
    imported = time.perf_counter() - started
    service._loaded.clear()  # measure a cold decode, not the cache
    started = time.perf_counter()
    loaded = service.load_case(case)
    decoded = time.perf_counter() - started
    viewer = window.viewer_for(discover().modality("image").name)
    started = time.perf_counter()
    display = type(viewer).prepare_display(loaded)  # worker thread in the app
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    viewer.show_case(loaded, display)  # GUI thread
    qtbot_wait()
    shown = time.perf_counter() - started
    return {"import_s": imported, "decode_s": decoded, "prepare_s": prepared, "show_s": shown, "case_id": case.id}


def stall_during_vlm(window, app, case_id: int, latency_s: float) -> dict[str, float]:
    from PySide6.QtCore import QTimer

    from inspector.settings import EndpointSettings
    from tests.loopback_vlm import LoopbackVLM

    gaps: list[float] = []
    with LoopbackVLM() as server:
        server.enqueue(delay_s=latency_s)
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=latency_s + 30))
        done: list[int] = []
        window.inspection_finished.connect(lambda cid: done.append(cid))
        window.case_browser.select_case(case_id)
        deadline = time.perf_counter() + 30
        while window._current is None or window._current.case.id != case_id:
            app.processEvents()
            if time.perf_counter() > deadline:
                raise RuntimeError("case did not open")
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        timer.start()
        started = time.perf_counter()
        window.inspect_current()
        while not done:
            app.processEvents()
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        timer.stop()
    gaps_ms = [g * 1000 for g in gaps]
    return {
        "request_s": elapsed,
        "max_stall_ms": max(gaps_ms),
        "p99_gap_ms": statistics.quantiles(gaps_ms, n=100)[98],
        "ticks": len(gaps_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="cold starts to time")
    parser.add_argument("--latency", type=float, default=5.0, help="simulated VLM latency in seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="anomalens-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ANOMALENS_HOME"] = str(tmp / "home")
        starts = cold_start(args.runs, tmp / "home")
        print(
            f"cold start to window shown: median {statistics.median(starts):.2f} s "
            f"(runs: {', '.join(f'{s:.2f}' for s in starts)})"
        )

        from PySide6.QtWidgets import QApplication

        from inspector.plugins import discover
        from inspector.settings import AppSettings
        from views.main_window import MainWindow

        app = QApplication.instance() or QApplication([])
        window = MainWindow(AppSettings(), discover(), settings_file=tmp / "settings.json")
        window.resize(1440, 900)
        window.show()
        window.open_project(tmp / "bench.anomalens")
        app.processEvents()
        png = large_png(tmp)
        large = open_large(window, app.processEvents, png)
        print(
            f"4096x4096 PNG ({png.stat().st_size / 1e6:.1f} MB): import {large['import_s']:.2f} s, "
            f"decode {large['decode_s']:.2f} s, convert for display {large['prepare_s']:.2f} s (worker thread), "
            f"show in viewer {large['show_s']:.2f} s (GUI thread)"
        )

        from inspector.model import Profile

        window.store.save_profile(Profile(name="bench", class_name="panel"))
        window._reload_profiles()
        window.refresh_cases()
        stalls = []
        for attempt in ("first", "second"):
            stall = stall_during_vlm(window, app, large["case_id"], args.latency)
            stalls.append(stall)
            print(
                f"{attempt} VLM request, {args.latency:.0f} s simulated latency (4096² case, prompt composed "
                f"in the background): {stall['request_s']:.2f} s; longest event-loop stall "
                f"{stall['max_stall_ms']:.1f} ms; p99 gap {stall['p99_gap_ms']:.1f} ms over {stall['ticks']} "
                "timer ticks (target < 100 ms)"
            )
        window.force_close = True
        window.close()
        if args.json:
            print(json.dumps({"cold_start_s": starts, "large_png": large, "stalls": stalls}))


if __name__ == "__main__":
    main()
