"""The window's responsiveness during a batch inspection (target: no event-loop stall over 100 ms).

A project of `--cases` tiny PNG cases (default 500, at `--concurrency` 16 set through the settings
file's ``batch_limits``) is inspected with Inspect ▸ Inspect selected cases against the
loopback OpenAI-compatible server (a real HTTP server, in a child process, answering after a fixed
`--latency`; a hosted model cannot be used here: no network, no key). A 5 ms QTimer on the GUI
thread records the gaps between its ticks while the batch runs; the longest gap is the longest
time the window could not repaint or take input.

Run under a display: ``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/gui_batch.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

from batch_inspection import RemoteServer, make_pngs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anomalens-guibatch-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ANOMALENS_HOME"] = str(tmp / "home")
        from PySide6.QtCore import QElapsedTimer, QTimer
        from PySide6.QtWidgets import QApplication

        from inspector.model import Profile
        from inspector.plugins import discover
        from inspector.settings import AppSettings, EndpointSettings
        from views.main_window import MainWindow

        app = QApplication.instance() or QApplication([])
        server = RemoteServer(args.latency)
        settings = AppSettings(extra={"batch_limits": {"concurrency": args.concurrency}})
        window = MainWindow(settings, discover(), settings_file=tmp / "settings.json")
        window.resize(1400, 900)
        window.show()
        window.open_project(tmp / "bench.anomalens")
        profile = window.store.save_profile(Profile(name="bench", class_name="tile"))
        window._reload_profiles(profile.id)
        (tmp / "cases").mkdir()
        pngs = make_pngs(tmp / "cases", args.cases)
        window.add_case_files([str(p) for p in pngs])
        deadline = time.monotonic() + 120
        while window.case_browser.row_count() < args.cases and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=30))

        clock = QElapsedTimer()
        clock.start()
        gaps: list[float] = []
        last = [clock.nsecsElapsed()]

        def tick() -> None:
            now = clock.nsecsElapsed()
            gaps.append((now - last[0]) / 1e6)
            last[0] = now

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        finished: list[int] = []
        window.batch_finished.connect(finished.append)
        started = time.perf_counter()
        timer.start()
        last[0] = clock.nsecsElapsed()
        window.inspect_selected()
        while not finished:
            app.processEvents()
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        timer.stop()
        inspected = sum(1 for c in window.store.cases() if c.status.value != "not_inspected")
        requests = server.chat_requests()
        server.stop()
        gap = np.array(gaps)
        ideal = args.cases * args.latency / args.concurrency
        print(
            f"cases {args.cases}, latency {args.latency} s, concurrency {args.concurrency}: {inspected} inspected, "
            f"{requests} requests, {elapsed:.2f} s (ideal {ideal:.2f} s, ratio {elapsed / ideal:.2f})"
        )
        print(
            f"GUI event loop during the batch: longest stall {gap.max():.1f} ms (target < 100 ms), "
            f"p99 gap {np.percentile(gap, 99):.1f} ms, median {np.median(gap):.1f} ms, {gap.size} ticks"
        )
        worst = int(np.argmax(gap))
        print(f"the longest stall came {gap[:worst].sum() / 1000:.2f} s after the start ({worst}/{gap.size} ticks)")
        print(f"status bar: {window.batch_panel.label.text()}")
        window.force_close = True
        window.close()
        return 0 if gap.max() < 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
