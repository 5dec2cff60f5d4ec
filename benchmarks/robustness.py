"""Hostile input, generated here, against the import path, the plugin loader and `main.py --batch`.

    .venv/bin/python benchmarks/robustness.py

Per group it prints: tried / clean operator message / accepted with a warning / failed. A try fails
when it raises something that is not an operator message, takes longer than 10 s, or is accepted
silently although the input is damaged or hostile. Each try runs in its own thread with that time
limit (a hung try is abandoned, and counted). The peak memory of the whole run is printed last.

This covers the classes handled so far (issue 12, first part): devices and pipes, image bombs,
truncated images, tables with millions of columns, NPZ and compressed-PCD bombs, embedded-folder
bombs, broken plugins, project files `--batch` cannot open. Deflated DICOM and Parquet bombs are not
generated yet (the Parquet limit is tested in tests/test_hostile_input.py with a lowered limit).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANOMALENS_HOME", tempfile.mkdtemp(prefix="anomalens-robustness-home-"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from inspector.inspection import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_ENTRIES, InspectionError, InspectionService  # noqa: E402
from inspector.plugins import discover  # noqa: E402
from inspector.store import ProjectStore, StoreError  # noqa: E402
from inspector.store.schema import SCHEMA_VERSION  # noqa: E402
from tests.hostile_inputs import short_png  # noqa: E402

LIMIT_S = 10.0
CLEAN, WARNED, FAILED = "clean", "warned", "failed"


def attempt(action: Callable[[], str]) -> tuple[str, str]:
    """Run one try with the time limit; its outcome and a note."""
    result: list[tuple[str, str]] = []

    def run() -> None:
        try:
            result.append((action(), ""))
        except (InspectionError, StoreError) as exc:
            result.append((CLEAN, str(exc)[:80]))
        except BaseException as exc:  # noqa: BLE001 - anything else is what this benchmark counts
            result.append((FAILED, f"{type(exc).__name__}: {exc}"[:120]))

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(LIMIT_S)
    if thread.is_alive():
        return FAILED, f"still running after {LIMIT_S:g} s"
    outcome, note = result[0]
    return outcome, f"{note} ({time.monotonic() - started:.2f} s)"


def imported(service: InspectionService, path: Path, hostile: bool = True) -> Callable[[], str]:
    """Import one file; a hostile one must give a case with an error, or a case with a warning."""

    def run() -> str:
        case, outcome = service.import_file(path)
        if outcome == "failed" and case.error:
            return CLEAN
        if case.metadata.get("warnings"):
            return WARNED
        return FAILED if hostile else CLEAN

    return run


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="anomalens-robustness-"))
    registry = discover()
    store = ProjectStore(tmp / "p.anomalens")
    service = InspectionService(store, registry)
    tries: dict[str, list[tuple[str, str, str]]] = defaultdict(list)

    def record(group: str, name: str, action: Callable[[], str]) -> None:
        outcome, note = attempt(action)
        tries[group].append((name, outcome, note))

    # devices and pipes, named like cases
    if sys.platform != "win32":
        for suffix in (".png", ".csv", ".ply", ".dcm", ".mp4", ".npy"):
            link = tmp / f"zero{suffix}"
            link.symlink_to("/dev/zero")
            record("devices and pipes", link.name, imported(service, link))
            fifo = tmp / f"pipe{suffix}"
            os.mkfifo(fifo)
            record("devices and pipes", fifo.name, imported(service, fifo))

    # image bombs and damaged images
    for side in (12_000, 20_000):
        bomb = tmp / f"bomb_{side}.png"
        Image.new("1", (side, side)).save(bomb, optimize=True)
        record("image bombs", bomb.name, imported(service, bomb))
    record("damaged images", "short.png", imported(service, short_png(tmp / "short.png", 800, 600)))
    full = tmp / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buffer, "PNG")
    full.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    record("damaged images", full.name, imported(service, full))

    # tables with millions of columns
    for label, name_of in (("short", lambda k: f"c{k}"), ("long", lambda k: f"channel_{k:09d}")):
        wide = tmp / f"wide_{label}.csv"
        with wide.open("w") as fh:
            fh.write(",".join(name_of(k) for k in range(2_000_000)) + "\n")
        record("wide tables", wide.name, imported(service, wide))

    # compressed formats whose sizes are declared before the data: NPZ (zip), PCD (LZF)
    npz = tmp / "bomb.npz"
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 3), np.float32))
        count = (1 << 30) // 12 + 1  # just over 1 GB of float32 points
        header["shape"] = (count, 3)
        with archive.open("points.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(1 << 24)
            for _ in range(count * 12 // len(zeros) + 1):
                member.write(zeros)
    record("format bombs", f"{npz.name} ({npz.stat().st_size / 1e6:.1f} MB packed)", imported(service, npz))
    pcd = tmp / "bomb.pcd"
    pcd.write_bytes(
        b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 50000000\n"
        b"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 50000000\nDATA binary_compressed\n"
        + struct.pack("<II", 12, 50_000_000 * 12)
        + bytes(12)
    )
    record("format bombs", pcd.name, imported(service, pcd))

    # embedded folder copies that would unpack too much, or are damaged
    folder = tmp / "frames"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.full((24, 32, 3), 40 * k, np.uint8)).save(folder / f"frame_{k:03d}.png")
    case, _ = service.import_file(folder)
    for label in ("too big", "too many", "damaged"):
        archive_bytes = io.BytesIO()
        with zipfile.ZipFile(archive_bytes, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            if label == "too big":
                archive.writestr("frame_000.png", b"\0" * (MAX_ARCHIVE_BYTES + 1))
            elif label == "too many":
                for k in range(MAX_ARCHIVE_ENTRIES + 1):
                    archive.writestr(f"f{k}.png", b"")
        blob = archive_bytes.getvalue() if label != "damaged" else b"PK\x03\x04 not a zip"
        sha = store.put_blob(blob)
        with store.transaction():
            store.db.execute("UPDATE cases SET blob_sha256 = ? WHERE id = ?", (sha, case.id))

        def load(case_id: int = case.id) -> str:
            InspectionService(store, registry).load_case(store.case(case_id))
            return FAILED  # loaded although hostile

        record("embedded folder bombs", label, load)

    # broken plugins
    plugin_dir = tmp / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "exits.py").write_text("import sys\nsys.exit(1)\n")
    (plugin_dir / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    (plugin_dir / "hangs.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    (plugin_dir / "raises.py").write_text("raise RuntimeError('no licence')\n")

    def load_plugins() -> str:
        loaded = discover([plugin_dir], timeout_s=3.0)
        return CLEAN if not loaded.loaded and len(loaded.errors) == 4 else FAILED

    record("broken plugins", "exit, interrupt, hang, raise", load_plugins)

    # project files --batch cannot open
    import main

    projects = {"missing": tmp / "missing.anomalens", "garbage": tmp / "garbage.anomalens"}
    projects["garbage"].write_bytes(b"\0nope" * 100)
    projects["foreign"] = tmp / "foreign.anomalens"
    with sqlite3.connect(projects["foreign"]) as db:
        db.execute("CREATE TABLE t (x)")
    projects["newer"] = tmp / "newer.anomalens"
    ProjectStore(projects["newer"]).close()
    with sqlite3.connect(projects["newer"]) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for label, path in projects.items():

        def batch(path: Path = path) -> str:
            with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
                code = main.main(["--batch", str(path)])
            return CLEAN if code == 2 and "Traceback" not in err.getvalue() else FAILED

        record("--batch project errors", label, batch)

    service.close()
    store.close()
    print(f"{'group':26s} {'tried':>5s} {'clean':>6s} {'warned':>7s} {'failed':>7s}")
    total_failed = 0
    for group, rows in tries.items():
        counts = {k: sum(1 for _, outcome, _ in rows if outcome == k) for k in (CLEAN, WARNED, FAILED)}
        total_failed += counts[FAILED]
        print(f"{group:26s} {len(rows):5d} {counts[CLEAN]:6d} {counts[WARNED]:7d} {counts[FAILED]:7d}")
        for name, outcome, note in rows:
            if outcome == FAILED:
                print(f"    FAILED {name}: {note}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tried = sum(len(rows) for rows in tries.values())
    print(f"summary: {tried} tried, {total_failed} failed, peak memory {peak_mb:.0f} MB (aim: 0 failed, under 2 GB)")


if __name__ == "__main__":
    main()
