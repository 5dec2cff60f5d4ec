"""Hostile input that must never hang, exhaust memory or modify a file (issue 12, first part):
devices and pipes named like cases, a pipe inside a DICOM series, a project of a newer version,
`main.py --batch` on a project it cannot open, a key's host matched exactly.

Each test that could hang on a regression has its own short timeout: a hang fails, it does not
stall the suite.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.inspection import InspectionError, InspectionService
from inspector.model import CaseStatus, Profile
from inspector.settings import AppSettings, host_is_within
from inspector.store import NewerProjectError, ProjectStore
from inspector.store.schema import SCHEMA_VERSION
from tests.conftest import textured_image
from tests.hostile_inputs import short_png

needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="devices and FIFOs are POSIX")


@pytest.fixture
def service(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    svc = InspectionService(store, registry)
    yield svc
    svc.close()
    store.close()


@needs_posix
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["scan.png", "series.csv", "part.ply", "slice.dcm"])
def test_a_device_named_like_a_case_is_refused_without_reading_it(tmp_path, service, name):
    link = tmp_path / name
    link.symlink_to("/dev/zero")
    case, outcome = service.import_file(link)
    assert outcome == "failed" and case.status == CaseStatus.ERROR
    assert "is a device" in case.error and "/dev/zero" in case.error


@needs_posix
@pytest.mark.timeout(60)
def test_a_pipe_is_refused_without_blocking(tmp_path, service):
    fifo = tmp_path / "sensor.csv"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    case, outcome = service.import_file(fifo)
    assert outcome == "failed" and "is a pipe" in case.error
    profile = service.store.save_profile(Profile(name="Line"))
    with pytest.raises(InspectionError, match="is a pipe"):
        service.add_reference_file(profile.id, fifo)


@needs_posix
@pytest.mark.timeout(60)
def test_a_pipe_inside_a_dicom_series_is_never_opened(tmp_path, service, registry):
    from plugins.dicom_modality.synthetic import write_series

    folder = tmp_path / "series"
    write_series(folder, np.zeros((3, 16, 16), np.int16))
    os.mkfifo(folder / "IM9999.dcm")
    assert registry.folder_modality(folder) is None  # not claimed as one clean series
    paths = registry.expand_paths([folder])
    results = [service.import_file(p) for p in paths]
    failed = [case for case, outcome in results if outcome == "failed"]
    assert [c.name for c in failed] == ["IM9999.dcm"] and "is a pipe" in failed[0].error
    assert sum(outcome == "added" for _, outcome in results) == 3  # the slices still open, one by one


@pytest.mark.timeout(60)
def test_a_project_of_a_newer_version_is_refused_byte_for_byte_untouched(tmp_path):
    path = tmp_path / "newer.anomalens"
    ProjectStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = DELETE")  # as a newer version might leave it
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(NewerProjectError, match="left untouched"):
        ProjectStore(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not Path(f"{path}-wal").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["missing", "foreign", "garbage", "newer"])
def test_batch_mode_on_a_project_it_cannot_open_says_why_and_exits_2(tmp_path, monkeypatch, capsys, kind):
    import main
    from inspector import settings as settings_module

    path = tmp_path / "p.anomalens"
    if kind == "foreign":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (x)")
    elif kind == "garbage":
        path.write_bytes(b"\x00not a database" * 200)
    elif kind == "newer":
        ProjectStore(path).close()
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    monkeypatch.setattr(settings_module, "load_settings", lambda: AppSettings())
    assert main.main(["--batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    expected = {
        "missing": "does not exist",
        "foreign": "not an Anomalens project",
        "garbage": "damaged",
        "newer": "newer Anomalens",
    }[kind]
    assert expected in err


def test_batch_mode_inspects_offline_and_exits_0(tmp_path, registry, monkeypatch, capsys):
    """The good path beside the bad ones: offline, every pending case printed with its verdict."""
    import main
    from inspector import settings as settings_module

    with ProjectStore(tmp_path / "p.anomalens") as store:
        svc = InspectionService(store, registry)
        profile = store.save_profile(Profile(name="Tile"))
        svc.add_reference_array(profile.id, "ref", textured_image(9, (48, 64)))
        for seed in (1, 2):
            Image.fromarray(textured_image(seed, (48, 64))).save(tmp_path / f"t{seed}.png")
            svc.import_file(tmp_path / f"t{seed}.png", profile.id)
        svc.close()
    monkeypatch.setattr(settings_module, "load_settings", lambda: AppSettings())
    assert main.main(["--batch", str(tmp_path / "p.anomalens")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == ["t1.png", "t2.png"]
    assert all(line.split("\t")[3] == "offline_detector" for line in lines)


@pytest.mark.parametrize(
    ("host", "within"),
    [
        ("api.openai.com", True),
        ("openai.com", True),
        ("OpenAI.com.", True),
        ("notopenai.com", False),
        ("evil-openai.com", False),
        ("openai.com.evil.net", False),
        ("localhost", False),
    ],
)
def test_a_keys_host_is_matched_exactly(host, within):
    assert host_is_within(host, "openai.com") is within


@pytest.mark.timeout(60)
@pytest.mark.parametrize("side", [12_000, 20_000])
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, service, side):
    """A small PNG whose header declares side x side pixels (1.2 GB as RGB at 20,000): refused by our
    limit (100 million pixels) or, far above it, by PIL's own decompression-bomb fence."""
    from inspector.imaging import MAX_IMAGE_PIXELS

    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path, optimize=True)  # one bit per pixel, all zero: a tiny file
    assert path.stat().st_size < 2_000_000 and side * side > MAX_IMAGE_PIXELS
    case, outcome = service.import_file(path)
    assert outcome == "failed"
    if side * side <= 2 * MAX_IMAGE_PIXELS:
        assert "not decoded" in case.error and f"{side:,} x {side:,}" in case.error
    else:
        assert "too large to open safely" in case.error


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["too big", "too many", "damaged"])
def test_an_embedded_folder_that_would_unpack_too_much_is_refused(tmp_path, registry, kind):
    """A project file from elsewhere can carry any blob as a folder case's copy."""
    import io
    import zipfile

    from inspector.inspection import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_ENTRIES

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(textured_image(k, (24, 32))).save(folder / f"frame_{k:03d}.png")
    with ProjectStore(tmp_path / "p.anomalens") as store:
        svc = InspectionService(store, registry)
        case, outcome = svc.import_file(folder)
        assert outcome == "added" and case.modality == "video"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            if kind == "too big":  # highly compressible: a few MB of zip, more than the limit unpacked
                archive.writestr("frame_000.png", b"\0" * (MAX_ARCHIVE_BYTES + 1))
            elif kind == "too many":
                for k in range(MAX_ARCHIVE_ENTRIES + 1):
                    archive.writestr(f"f{k}.png", b"")
        blob = buffer.getvalue() if kind != "damaged" else b"PK\x03\x04 not really a zip"
        sha = store.put_blob(blob)
        with store.transaction():
            store.db.execute("UPDATE cases SET blob_sha256 = ? WHERE id = ?", (sha, case.id))
        fresh = InspectionService(store, registry)
        with pytest.raises(InspectionError) as raised:
            fresh.load_case(store.case(case.id))
        expected = {"too big": "would unpack to", "too many": "entries", "damaged": "is damaged"}[kind]
        assert expected in str(raised.value)
        assert not any(p.is_file() for p in fresh._unpack_dir.rglob("*"))  # nothing was written
        fresh.close()
        svc.close()


def _tiles_project(path: Path, registry, cases: int = 3) -> None:
    with ProjectStore(path) as store:
        svc = InspectionService(store, registry)
        profile = store.save_profile(Profile(name="Tile"))
        svc.add_reference_array(profile.id, "ref", textured_image(99, (48, 64)))
        for seed in range(cases):
            Image.fromarray(textured_image(seed, (48, 64))).save(path.parent / f"t{seed}.png")
            svc.import_file(path.parent / f"t{seed}.png", profile.id)
        svc.close()


@pytest.mark.timeout(180)
def test_a_second_batch_process_is_refused_and_every_case_is_asked_once(tmp_path, registry, isolated_user_dirs, capsys):
    """A real second process: `main.py --batch` runs against a slow loopback model while this test
    starts another `--batch` on the same project."""
    import json
    import subprocess
    import time

    import main
    from tests.conftest import ROOT
    from tests.loopback_vlm import LoopbackVLM, Reply

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry)
    answer = json.dumps({"anomalous": False, "confidence": 0.9, "reason": "Even."})

    def slow(request):
        time.sleep(1.0)
        return Reply(answer)

    with LoopbackVLM(responder=slow) as server:
        settings = {
            "endpoint": {"base_url": server.base_url, "model": "m", "timeout_s": 30},
            "batch_limits": {"concurrency": 1},
        }
        (isolated_user_dirs / "settings.json").write_text(json.dumps(settings))
        first = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--batch", str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 120
        while not server.chat_requests and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)  # the first process holds the lease once its first request is out
        assert server.chat_requests, first.communicate()
        assert main.main(["--batch", str(project)]) == 2
        assert "Another batch is running on this project" in capsys.readouterr().err
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert len(server.chat_requests) == 3  # each case once: the second process asked nothing
    with ProjectStore(project) as store:
        assert all(len(store.verdicts(c.id)) == 1 for c in store.cases())
        assert store.conn.execute("SELECT count(*) FROM meta WHERE key = 'batch_lease'").fetchone()[0] == 0


def test_a_lease_left_by_a_process_that_died_here_is_taken_over(tmp_path, registry, monkeypatch, capsys):
    import socket
    import subprocess

    import main
    from inspector import settings as settings_module

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry, cases=1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    with ProjectStore(project) as store:
        assert store.acquire_batch_lease("dead", {"host": socket.gethostname(), "pid": gone.pid}) is None
    monkeypatch.setattr(settings_module, "load_settings", lambda: AppSettings())
    assert main.main(["--batch", str(project)]) == 0  # offline, once the dead lease is taken over
    with ProjectStore(project) as store:
        other = {"host": "another-machine", "pid": 1}
        assert store.acquire_batch_lease("elsewhere", other) is None  # a live lease of another machine
    assert main.main(["--batch", str(project)]) == 2
    assert "process 1 on another-machine" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_plugins_that_exit_interrupt_or_hang_at_import_are_skipped(tmp_path):
    from inspector.plugins import discover

    (tmp_path / "exits.py").write_text("import sys\nsys.exit('no licence')\n")
    (tmp_path / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    (tmp_path / "hangs.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    (tmp_path / "hangs_in_register.py").write_text("import time\ndef register(registry):\n    time.sleep(3600)\n")
    registry = discover([tmp_path], timeout_s=2.0)
    failed = {e.plugin: e.message for e in registry.errors}
    assert registry.loaded == [] and set(failed) == {"exits", "interrupts", "hangs", "hangs_in_register"}
    assert "SystemExit: no licence" in failed["exits"] and "KeyboardInterrupt" in failed["interrupts"]
    assert "did not finish loading within 2 s" in failed["hangs"]
    assert "did not finish loading" in failed["hangs_in_register"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return None", "returned NoneType, not a case"),
        ("raise SystemExit(3)", "reader failed (SystemExit: 3)"),
        ("return 1 / 0", "reader failed (ZeroDivisionError"),
    ],
)
def test_a_reader_that_misbehaves_gives_an_operator_message(tmp_path, body, expected):
    from inspector.plugins import discover

    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "odd_modality.py").write_text(
        "from inspector.plugins import ModalityPlugin\n"
        f"def read(path):\n    {body}\n"
        "def register(registry):\n"
        "    registry.register_modality(ModalityPlugin(name='odd', title='Odd', extensions=('.odd',), read=read,\n"
        "                                              render=lambda case, options: []))\n"
    )
    registry = discover([plugin_dir])
    assert registry.errors == []
    (tmp_path / "x.odd").write_bytes(b"odd bytes")
    with ProjectStore(tmp_path / "p.anomalens") as store:
        svc = InspectionService(store, registry)
        case, outcome = svc.import_file(tmp_path / "x.odd")
        svc.close()
    assert outcome == "failed" and case.error.startswith("x.odd: ") and expected in case.error


@pytest.mark.timeout(60)
def test_reference_names_never_reach_the_model_unless_the_profile_asks(tmp_path, service):
    """A reference file named after a patient: the request the server receives does not carry it."""
    import asyncio
    import json

    from inspector.prompt import PromptSwitches
    from inspector.settings import EndpointSettings
    from tests.loopback_vlm import LoopbackVLM

    reference = tmp_path / "DOE_JANE_1961-04-02.png"
    Image.fromarray(textured_image(3, (48, 64))).save(reference)
    Image.fromarray(textured_image(4, (48, 64))).save(tmp_path / "case.png")
    profile = service.store.save_profile(Profile(name="Chest", class_name="chest film"))
    service.add_reference_file(profile.id, reference)
    case, _ = service.import_file(tmp_path / "case.png", profile.id)
    with LoopbackVLM() as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="m", timeout_s=20)
        prompt = service.compose_prompt(case, profile, PromptSwitches())
        asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        named = Profile(**{**vars(profile), "settings": {"reference_captions": "names"}})
        asyncio.run(service.inspect_with_vlm(case, service.compose_prompt(case, named, PromptSwitches()), endpoint))
        neutral_request, named_request = (json.dumps(r.body) for r in server.chat_requests)
    assert "DOE_JANE" not in neutral_request and "Normal reference 1" in neutral_request
    assert "DOE_JANE_1961-04-02.png" in named_request  # the profile opted in


def test_a_damaged_but_decodable_image_is_imported_with_a_warning_and_its_verdict_says_so(tmp_path, service):
    profile = service.store.save_profile(Profile(name="Tile"))
    service.add_reference_array(profile.id, "ref", textured_image(5, (300, 400)))
    case, outcome = service.import_file(short_png(tmp_path / "short.png"), profile.id)
    assert outcome == "added" and case.status == CaseStatus.NOT_INSPECTED
    assert case.metadata["warnings"] == [
        "the image data ends after 10 of 300 rows (a truncated or damaged file): the rest shows black"
    ]
    verdict = service.inspect_offline(case, profile)
    assert "ends after 10 of 300 rows" in verdict.details["input_warnings"][0]
    assert service.store.latest_verdict(case.id).details["input_warnings"] == verdict.details["input_warnings"]


@pytest.mark.gui
def test_the_window_shows_a_damaged_input(qtbot, tmp_path, registry):
    from views.main_window import MainWindow

    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    assert window.open_project(tmp_path / "p.anomalens")
    profile = window.store.save_profile(Profile(name="Tile"))
    window.service.add_reference_array(profile.id, "ref", textured_image(5, (300, 400)))
    window._reload_profiles(profile.id)
    case, _ = window.service.import_file(short_png(tmp_path / "short.png"), profile.id)
    window.refresh_cases()
    assert window.case_browser.status_text(case.id).endswith("⚠")
    with qtbot.waitSignal(window.case_shown, timeout=30000):
        window.show_case(case.id)
    with qtbot.waitSignal(window.inspection_finished, timeout=120000):
        window.inspect_current()
    assert window.verdict_panel.explanation.toPlainText().startswith("Damaged input: the image data ends")
    window.force_close = True
    window.close()


def test_a_providers_key_is_flagged_for_any_other_host(monkeypatch):
    from inspector.settings import EndpointSettings, confirm_key_host, foreign_key_host, key_host_problem

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    local = EndpointSettings(base_url="http://10.0.0.5:8000/v1", model="m")
    assert foreign_key_host(local) == ("OPENAI_API_KEY", "10.0.0.5")
    assert foreign_key_host(EndpointSettings(base_url="https://api.openai.com/v1", model="m")) is None
    assert foreign_key_host(EndpointSettings(base_url="https://notopenai.com/v1", model="m")) is not None
    assert foreign_key_host(EndpointSettings(base_url=local.base_url, model="m", api_key_env="MY_VLLM_KEY")) is None
    settings = AppSettings(endpoint=local)
    assert key_host_problem(settings) == ("OPENAI_API_KEY", "10.0.0.5")
    confirm_key_host(settings, "OPENAI_API_KEY", "10.0.0.5")
    assert key_host_problem(settings) is None and settings.to_dict()["confirmed_key_hosts"] == {
        "OPENAI_API_KEY": ["10.0.0.5"]
    }
    assert "sk-test" not in repr(settings.to_dict())
    monkeypatch.delenv("OPENAI_API_KEY")
    assert foreign_key_host(local) is None  # no key in the environment: nothing would be sent


@pytest.mark.timeout(120)
def test_batch_mode_sends_a_providers_key_elsewhere_only_with_the_flag(tmp_path, registry, monkeypatch, capsys):
    import main
    from inspector import settings as settings_module
    from inspector.settings import EndpointSettings
    from tests.loopback_vlm import LoopbackVLM

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry, cases=1)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider-key")
    with LoopbackVLM() as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="m", timeout_s=20)
        monkeypatch.setattr(settings_module, "load_settings", lambda: AppSettings(endpoint=endpoint))
        assert main.main(["--batch", str(project)]) == 2
        err = capsys.readouterr().err
        assert "--allow-key-host 127.0.0.1" in err and "sk-provider-key" not in err
        assert server.chat_requests == []  # nothing was sent
        assert main.main(["--batch", str(project), "--allow-key-host", "127.0.0.1"]) == 0
        assert server.chat_requests[0].headers.get("authorization") == "Bearer sk-provider-key"


@pytest.mark.gui
def test_the_window_asks_once_before_a_providers_key_goes_to_another_host(qtbot, tmp_path, registry, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from inspector.settings import EndpointSettings, load_settings
    from tests.loopback_vlm import LoopbackVLM
    from views.main_window import MainWindow

    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider-key")
    answers: list[QMessageBox.StandardButton] = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    _tiles_project(tmp_path / "p.anomalens", registry, cases=1)
    with LoopbackVLM() as server:
        window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        assert window.open_project(tmp_path / "p.anomalens")
        window.set_endpoint(EndpointSettings(base_url=server.base_url, model="m", timeout_s=20))
        case_id = window.store.cases()[0].id
        with qtbot.waitSignal(window.case_shown, timeout=30000):
            window.show_case(case_id)
        window.inspect_current()  # No: nothing is sent
        assert len(asked) == 1 and "127.0.0.1" in asked[0] and server.chat_requests == []
        with qtbot.waitSignal(window.inspection_finished, timeout=30000):
            window.inspect_current()  # Yes: sent, and remembered for this host
        with qtbot.waitSignal(window.inspection_finished, timeout=30000):
            window.inspect_current()  # not asked again
        assert len(asked) == 2 and len(server.chat_requests) == 2
        saved = load_settings(tmp_path / "settings.json")
        assert saved.extra["confirmed_key_hosts"] == {"OPENAI_API_KEY": ["127.0.0.1"]}
        assert "sk-provider-key" not in (tmp_path / "settings.json").read_text()
        window.force_close = True
        window.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("header", ["short", "long"])
def test_a_table_with_millions_of_columns_is_refused_at_once(tmp_path, service, header):
    path = tmp_path / "wide.csv"
    names = (f"c{k}" if header == "short" else f"channel_{k:09d}" for k in range(2_000_000))
    with path.open("w") as fh:
        fh.write(",".join(names) + "\n" + ",".join("1" for _ in range(2_000_000)) + "\n")
    case, outcome = service.import_file(path)
    assert outcome == "failed" and "columns; a series is read with at most 10,000" in case.error


def test_a_lease_this_process_left_behind_does_not_lock_it_out(tmp_path, registry):
    """A batch cancelled while its project was closed leaves its lease; the next batch of the same
    process takes it over instead of waiting for it to go stale."""
    import os
    import socket

    from inspector.session import InspectionSession, RunSettings

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry, cases=1)
    with ProjectStore(project) as store:
        left = {"host": socket.gethostname(), "pid": os.getpid()}
        assert store.acquire_batch_lease("an earlier session of this process", left) is None
        session = InspectionSession(InspectionService(store, registry), RunSettings())
        progress = session.inspect_offline(session.pending_case_ids(), session.default_profile())
        assert progress.done == 1
        # while a batch of this process runs, its lease is not taken by another session of it
        with session.lease.held():
            other = InspectionSession(InspectionService(store, registry), RunSettings())
            with pytest.raises(InspectionError, match="Another batch is running"):
                other.inspect_offline([], other.default_profile())


@pytest.mark.timeout(120)
def test_a_batch_whose_writes_hit_a_lock_stops_and_leaves_its_cases_pending(tmp_path, registry):
    """Another program holds the project file's write lock mid-batch: the batch retries, stops with
    the reason, and every case it could not store stays pending; resumed later, it finishes."""
    import asyncio
    import json
    import threading

    from inspector.session import InspectionSession, RunSettings
    from inspector.settings import EndpointSettings
    from inspector.vlm.batch import resume_batch
    from tests.loopback_vlm import LoopbackVLM, Reply

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry, cases=3)
    blocker = sqlite3.connect(project, isolation_level=None, check_same_thread=False)
    locked = threading.Event()

    def respond(request):
        if not locked.is_set():  # the first request takes the lock away before its answer is stored
            blocker.execute("BEGIN EXCLUSIVE")
            locked.set()
        return Reply(json.dumps({"anomalous": False, "confidence": 0.9, "reason": "Even."}))

    with LoopbackVLM(responder=respond) as server, ProjectStore(project, busy_timeout_ms=200) as store:
        service = InspectionService(store, registry)
        endpoint = EndpointSettings(base_url=server.base_url, model="m", timeout_s=20)
        session = InspectionSession(service, RunSettings(endpoint=endpoint))
        ids = [c.id for c in store.cases()]
        progress = asyncio.run(session.inspect_cases(ids, session.default_profile()))
        assert progress.status == "stopped" and "locked" in progress.message.lower()
        assert "stay pending" in progress.message
        blocker.execute("ROLLBACK")
        items = store.batch_items(progress.batch_id)
        assert [i.state for i in items] == ["pending"] * 3 and progress.pending == 3
        resumed = asyncio.run(
            resume_batch(service, progress.batch_id, lambda case: session.default_profile(), endpoint)
        )
        assert resumed.status == "done" and {i.state for i in store.batch_items(progress.batch_id)} == {"done"}
        service.close()
    blocker.close()


@pytest.mark.timeout(60)
def test_a_frame_folder_with_a_truncated_frame_stays_one_case_that_says_which_frame(tmp_path, service, registry):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(8):
        Image.fromarray(textured_image(k, (48, 64))).save(folder / f"frame_{k:03d}.png")
    last = folder / "frame_007.png"
    last.write_bytes(last.read_bytes()[:200])  # a copy interrupted on the last frame
    assert registry.folder_modality(folder) is not None
    paths = registry.expand_paths([folder])
    assert paths == [folder]  # one case, not seven images and an error
    case, outcome = service.import_file(folder)
    assert outcome == "failed" and case.modality == "video" and "frame_007.png" in case.error


@pytest.mark.parametrize("kind", ["npz", "parquet"])
def test_compressed_members_are_sized_before_they_are_inflated(tmp_path, service, monkeypatch, kind):
    """The limits (1 GB) are lowered here so that a small file can stand for a bomb."""
    import plugins.pointcloud_modality.simple_formats as npz_reader
    import plugins.timeseries_modality.reader as series_reader

    if kind == "npz":
        monkeypatch.setattr(npz_reader, "MAX_NPZ_BYTES", 1_000_000)
        path = tmp_path / "cloud.npz"
        np.savez_compressed(path, points=np.zeros((200_000, 3), np.float32))  # 2.4 MB unpacked, a few KB packed
        assert path.stat().st_size < 100_000
        expected = "would unpack to 2 MB"
    else:
        import pandas as pd

        monkeypatch.setattr(series_reader, "MAX_PARQUET_BYTES", 1_000_000)
        path = tmp_path / "series.parquet"
        pd.DataFrame({"value": np.zeros(400_000)}).to_parquet(path)
        expected = "a series is read with at most"
    case, outcome = service.import_file(path)
    assert outcome == "failed" and expected in case.error


def test_a_compressed_pcd_that_claims_too_much_is_refused_before_unpacking(tmp_path, service):
    """A PCD header of 50 million points whose LZF body is 12 bytes (it would unpack to 600 MB)."""
    header = (
        b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        b"WIDTH 50000000\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 50000000\nDATA binary_compressed\n"
    )
    raw_size = 50_000_000 * 12
    body = struct.pack("<II", 12, raw_size) + b"\x00" * 12
    path = tmp_path / "bomb.pcd"
    path.write_bytes(header + body)
    case, outcome = service.import_file(path)
    assert outcome == "failed" and "claims 600,000,000 bytes unpacked from 12" in case.error


def test_a_plugin_that_clashes_with_a_modality_is_skipped_whole(tmp_path):
    from inspector.plugins import default_plugin_dirs, discover

    (tmp_path / "clash.py").write_text(
        "from inspector.plugins import ModalityPlugin\n"
        "def register(registry):\n"
        "    for name in ('extra', 'image'):\n"
        "        registry.register_modality(ModalityPlugin(name=name, title=name, extensions=('.x',),\n"
        "                                                  read=lambda p: None, render=lambda c, o: []))\n"
    )
    registry = discover([*default_plugin_dirs(), tmp_path])
    assert "extra" not in registry.modalities and registry.modality("image").title == "2D image"
    assert [e.plugin for e in registry.errors] == ["clash"] and "'image' is already registered" in registry.errors[
        0
    ].message


@pytest.mark.timeout(60)
def test_a_reader_that_never_returns_is_reported_and_the_import_goes_on(tmp_path, monkeypatch):
    import inspector.inspection as inspection
    from inspector.plugins import default_plugin_dirs, discover

    monkeypatch.setattr(inspection, "READ_TIME_LIMIT_S", 1.0)
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "slow_modality.py").write_text(
        "import time\n"
        "from inspector.plugins import ModalityPlugin\n"
        "def read(path):\n    time.sleep(3600)\n"
        "def register(registry):\n"
        "    registry.register_modality(ModalityPlugin(name='slow', title='Slow', extensions=('.slow',), read=read,\n"
        "                                              render=lambda case, options: []))\n"
    )
    registry = discover([*default_plugin_dirs(), plugin_dir])
    (tmp_path / "x.slow").write_bytes(b"slow")
    Image.fromarray(textured_image(1, (24, 32))).save(tmp_path / "fine.png")
    with ProjectStore(tmp_path / "p.anomalens") as store:
        svc = InspectionService(store, registry)
        result = svc.import_files([tmp_path / "x.slow", tmp_path / "fine.png"])
        svc.close()
    assert [c.name for c in result.failed] == ["x.slow"] and "did not finish within 1 s" in result.failed[0].error
    assert [c.name for c in result.added] == ["fine.png"]  # the next file was imported


@pytest.mark.timeout(120)
def test_the_egress_log_lists_every_request_and_its_images_by_host(tmp_path, registry, capsys):
    """Two batches over the same cases: the second comes from the response cache and sends nothing."""
    import asyncio

    import main
    from inspector.egress import egress_log
    from inspector.session import InspectionSession, RunSettings
    from inspector.settings import EndpointSettings
    from tests.loopback_vlm import LoopbackVLM

    project = tmp_path / "p.anomalens"
    _tiles_project(project, registry, cases=2)
    with LoopbackVLM() as server, ProjectStore(project) as store:
        endpoint = EndpointSettings(base_url=server.base_url, model="m", timeout_s=20)
        session = InspectionSession(InspectionService(store, registry), RunSettings(endpoint=endpoint))
        ids = [c.id for c in store.cases()]
        for _ in range(2):
            asyncio.run(session.inspect_cases(ids, session.default_profile()))
        sent = server.chat_requests
        log = egress_log(store)
    assert len(sent) == 2 and len(log) == 2  # the replayed batch is not in the log: nothing left
    assert {r.host for r in log} == {"127.0.0.1"} and {r.kind for r in log} == {"inspection"}
    assert [r.case_name for r in log] == ["t0.png", "t1.png"]
    assert all(len(r.images) == len(s.image_sizes) == 2 for r, s in zip(log, sent, strict=True))
    assert all(r.images[0].startswith("reference:") and r.images[1].startswith("query:") for r in log)
    assert main.main(["--egress", str(project)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sent_at,host,endpoint,model") and len(out) == 3 and ",127.0.0.1," in out[1]
