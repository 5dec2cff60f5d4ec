"""The headless use cases (`inspector.session`), and the same batch from `main.py --batch` and the window.

The model is the loopback OpenAI-compatible server on 127.0.0.1 (tests/loopback_vlm.py): a hosted
model cannot be reached from the test machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from inspector.inspection import InspectionService
from inspector.model import CaseStatus, Profile
from inspector.prompt import PromptSwitches
from inspector.session import InspectionSession, RunSettings, Variant
from inspector.settings import AppSettings, EndpointSettings
from inspector.store import ProjectStore
from inspector.vlm.batch import create_batch
from inspector.vlm.ratelimit import BatchLimits
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply

ANSWER = json.dumps({"anomalous": False, "confidence": 0.9, "reason": "Even surface."})
ZERO_SHOT = PromptSwitches(references=False, max_references=0, standards=False)
PRICES = {
    "model-a": {"input_per_1k": 0.01, "output_per_1k": 0.03},
    "model-b": {"input_per_1k": 0.02, "output_per_1k": 0.05},
}


def _settings(server: LoopbackVLM, **extra) -> AppSettings:
    endpoint = EndpointSettings(base_url=server.base_url, model="model-a", timeout_s=20)
    return AppSettings(
        endpoint=endpoint, extra={"batch_limits": {"concurrency": 1, "max_attempts": 2}, "prices": PRICES, **extra}
    )


def _project(path: Path, registry, server_url: str, cases: int = 5) -> None:
    """A project whose first two cases sit in an interrupted A/B batch of another model (model-b,
    zero-shot variant) and whose other cases were never inspected."""
    store = ProjectStore(path)
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Disc", class_name="brake disc"))
    service.add_reference_array(profile.id, "ref", textured_image(50, (48, 64)))
    ids = []
    for seed in range(cases):
        image = path.parent / f"part{seed}.png"
        Image.fromarray(textured_image(seed, (48, 64))).save(image)
        case, _ = service.import_file(image, profile.id)
        ids.append(case.id)
    create_batch(
        service, ids[:2], EndpointSettings(base_url=server_url, model="model-b"), BatchLimits(concurrency=3), ZERO_SHOT
    )
    service.close()
    store.close()


def _outcome(path: Path) -> dict:
    """What a run left in the project file: per batch its model, limits and item states; per answer its
    model and whether its prompt carried reference images."""
    with sqlite3.connect(path) as db:
        batches = [
            (
                json.loads(e)["model"],
                json.loads(limits).get("concurrency"),
                json.loads(limits).get("prompt_switches", {}).get("references"),
                tuple(
                    s
                    for (s,) in db.execute("SELECT state FROM batch_items WHERE batch_id = ? ORDER BY position", (bid,))
                ),
            )
            for bid, e, limits in db.execute("SELECT id, endpoint_json, limits_json FROM batches ORDER BY id")
        ]
        answers = sorted(db.execute("SELECT case_id, model FROM answers").fetchall())
    return {"batches": batches, "answers": answers}


def _requests(server: LoopbackVLM) -> list[tuple[str, int]]:
    """(model, images sent) per request: the zero-shot variant sends only the case image."""
    return [(r.body["model"], len(r.image_sizes)) for r in server.chat_requests]


def test_run_settings_read_the_typed_sections_once():
    settings = AppSettings(
        extra={
            "batch_limits": {"concurrency": 2, "requests_per_minute": 30, "unknown": 1},
            "prices": PRICES,
            "localization": {"method": "segments"},
        }
    )
    run = RunSettings.from_settings(settings)
    assert (run.limits.concurrency, run.limits.requests_per_minute) == (2, 30)
    assert run.prices.cost("model-b", 1000, 1000) == pytest.approx(0.07)
    assert run.mark_settings == {"method": "segments"} and run.warnings == ()
    assert RunSettings.from_settings(settings, concurrency=7).limits.concurrency == 7


def test_run_settings_that_cannot_be_read_say_so_and_use_the_defaults():
    run = RunSettings.from_settings(
        AppSettings(extra={"batch_limits": {"concurrency": "many"}, "prices": {"m": "free"}, "localization": [1]})
    )
    assert run.limits == BatchLimits() and run.prices.cost("m", 10, 10) is None and run.mark_settings == {}
    assert len(run.warnings) == 2 and "batch limits" in run.warnings[0] and "price" in run.warnings[1]


def test_pending_cases_resume_the_interrupted_batch_with_its_own_model_and_variant(tmp_path, registry):
    with LoopbackVLM(responder=lambda request: Reply(ANSWER)) as server:
        _project(tmp_path / "p.anomalens", registry, server.base_url)
        with ProjectStore(tmp_path / "p.anomalens") as store:
            session = InspectionSession(
                InspectionService(store, registry), RunSettings.from_settings(_settings(server))
            )
            results = asyncio.run(session.inspect_pending(session.default_profile()))
            assert [p.status for p in results] == ["done", "done"]
            assert {c.status for c in store.cases()} == {CaseStatus.NORMAL}
        # the two interrupted cases with model-b and the case image only; the other three with today's
        # model and the reference too
        assert sorted(_requests(server)) == [("model-a", 2)] * 3 + [("model-b", 1)] * 2
    assert results[0].cost is not None and results[1].cost is not None  # both models have prices


def test_an_ab_comparison_asks_each_variant_about_every_case(tmp_path, registry):
    with LoopbackVLM(responder=lambda request: Reply(ANSWER)) as server:
        _project(tmp_path / "p.anomalens", registry, server.base_url, cases=3)
        with ProjectStore(tmp_path / "p.anomalens") as store:
            session = InspectionSession(
                InspectionService(store, registry), RunSettings.from_settings(_settings(server))
            )
            ids = [c.id for c in store.cases()]
            progress = asyncio.run(
                session.ab_comparison(
                    ids, [Variant("", PromptSwitches()), Variant("model-b", ZERO_SHOT)], session.default_profile()
                )
            )
        assert progress.status == "done"
        assert _requests(server) == [("model-a", 2)] * 3 + [("model-b", 1)] * 3


def test_offline_batch_goes_on_after_a_case_that_cannot_be_read(tmp_path, registry):
    with LoopbackVLM() as server:
        _project(tmp_path / "p.anomalens", registry, server.base_url, cases=3)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        broken = store.cases()[1]  # sources are embedded: damage the stored copy
        damaged = store.put_blob(b"not a png")
        with store.transaction():
            store.db.execute("UPDATE cases SET blob_sha256 = ? WHERE id = ?", (damaged, broken.id))
        session = InspectionSession(InspectionService(store, registry), RunSettings())
        errors: list[str] = []
        progress = session.inspect_offline(
            session.pending_case_ids(),
            session.default_profile(),
            on_error=lambda case, message: errors.append(case.name),
        )
        assert (progress.done, progress.failed, progress.status) == (2, 1, "done")
        assert errors == [broken.name]


@pytest.mark.gui
def test_main_batch_and_the_window_produce_the_same_batches(qtbot, tmp_path, registry, monkeypatch, capsys):
    """One project, copied: `main.py --batch` on one copy, Inspect with nothing selected in the window
    on the other. Same requests (models, variants), same batches (limits from the settings file), same
    answers, same cost."""
    import main
    from inspector import settings as settings_module
    from views.main_window import MainWindow

    with LoopbackVLM(responder=lambda request: Reply(ANSWER)) as server:
        _project(tmp_path / "original.anomalens", registry, server.base_url)
        for name in ("cli", "gui"):
            shutil.copy(tmp_path / "original.anomalens", tmp_path / f"{name}.anomalens")
        settings = _settings(server)

        monkeypatch.setattr(settings_module, "load_settings", lambda: settings)
        assert main.main(["--batch", str(tmp_path / "cli.anomalens")]) == 0
        cli_requests = _requests(server)
        cli_costs = [
            line.rsplit("cost ", 1)[1] for line in capsys.readouterr().err.splitlines() if line.startswith("batch ")
        ]

        window = MainWindow(settings, registry, settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        assert window.open_project(tmp_path / "gui.anomalens")
        with qtbot.waitSignal(window.batch_finished, timeout=60000):
            window.inspect_selected()
        gui_requests = _requests(server)[len(cli_requests) :]
        gui_cost = window.batch_panel.label.text()
        window.force_close = True
        window.close()

    assert sorted(cli_requests) == sorted(gui_requests) == [("model-a", 2)] * 3 + [("model-b", 1)] * 2
    cli, gui = _outcome(tmp_path / "cli.anomalens"), _outcome(tmp_path / "gui.anomalens")
    assert cli == gui
    # the resumed batch keeps its model and variant; the new one has the settings file's limits
    assert cli["batches"] == [("model-b", 3, False, ("done", "done")), ("model-a", 1, None, ("done",) * 3)]
    assert len(cli_costs) == 2 and all(c.startswith("$") for c in cli_costs)
    assert cli_costs[-1] in gui_cost  # the window shows the last batch's cost, as priced by the same table


@pytest.mark.gui
def test_inspect_sends_the_previewed_prompt_unless_something_changed(qtbot, tmp_path, registry, monkeypatch):
    """The prompt is composed once for the preview; Inspect sends that one. A changed switch (or
    edited text) composes anew."""
    from views.main_window import MainWindow

    with LoopbackVLM(responder=lambda request: Reply(ANSWER)) as server:
        _project(tmp_path / "p.anomalens", registry, server.base_url, cases=1)
        window = MainWindow(_settings(server), registry, settings_file=tmp_path / "settings.json")
        qtbot.addWidget(window)
        assert window.open_project(tmp_path / "p.anomalens")
        service = window.service
        composed: list[str] = []
        original = service.compose_prompt

        def counting(*args, **kwargs):
            prompt = original(*args, **kwargs)
            composed.append(prompt.sha256)
            return prompt

        monkeypatch.setattr(service, "compose_prompt", counting)
        case_id = window.store.cases()[0].id
        with qtbot.waitSignal(window.case_shown, timeout=30000):
            window.show_case(case_id)
        assert len(composed) == 1
        with qtbot.waitSignal(window.inspection_finished, timeout=30000):
            window.inspect_current()
        assert len(composed) == 1  # not composed again
        with sqlite3.connect(tmp_path / "p.anomalens") as db:
            sent = db.execute("SELECT p.sha256 FROM answers a JOIN prompts p ON p.id = a.prompt_id").fetchall()
        assert sent == [(composed[0],)]

        window.prompt_panel.text.setPlainText(window.prompt_panel.text.toPlainText() + "\nLook at the rim.")
        with qtbot.waitSignal(window.inspection_finished, timeout=30000):
            window.inspect_current()
        assert len(composed) == 2 and composed[1] != composed[0]  # the edited text was composed and sent
        window.force_close = True
        window.close()


def test_the_prompt_carries_its_view_maps_to_another_service(tmp_path, registry):
    """A box the model draws on a downscaled view lands in case pixels, whichever service composed the
    prompt: the map back to the case travels with the prompt (and is stored with its record)."""
    image = tmp_path / "big.png"
    Image.fromarray(textured_image(5, (1536, 2048))).save(image)  # sent at 1024 x 768: scale 2
    answer = json.dumps(
        {
            "anomalous": True,
            "confidence": 0.8,
            "reason": "A stain.",
            "regions": [{"box": [100, 100, 200, 150], "label": "stain"}],
        }
    )
    with ProjectStore(tmp_path / "p.anomalens") as store:
        composer = InspectionService(store, registry)
        profile = store.save_profile(Profile(name="Plate", class_name="steel plate"))
        case, _ = composer.import_file(image, profile.id)
        prompt = composer.compose_prompt(case, profile, PromptSwitches(references=False))
        assert set(prompt.view_maps) == {q.label for q in prompt.queries}
        assert prompt.to_record()["view_maps"]["image"]["params"]["scale_x"] == pytest.approx(2.0)
        with LoopbackVLM(responder=lambda request: Reply(answer)) as server:
            asker = InspectionService(store, registry)  # a fresh service: nothing cached beside the prompt
            endpoint = EndpointSettings(base_url=server.base_url, model="m", timeout_s=20)
            verdict = asyncio.run(asker.inspect_with_vlm(case, prompt, endpoint))
    region = verdict.regions[0]
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((200, 200, 400, 300))


def test_the_viewer_state_separates_the_modality_options_from_the_drawn_regions():
    from inspector.model import ViewerState

    state = ViewerState.from_render_options({"slice": 6, "window": [40, 80], "drawn_regions": [[1, 2, 30, 40], [5]]})
    assert state.options == {"slice": 6, "window": [40, 80]}
    assert state.drawn_regions == ((1.0, 2.0, 30.0, 40.0),)  # a box that is not four numbers is dropped
    assert state.render_options() == {"slice": 6, "window": [40, 80], "drawn_regions": [[1.0, 2.0, 30.0, 40.0]]}
    assert ViewerState.from_render_options(state.render_options()) == state
    assert state.key() == ViewerState({"window": [40, 80], "slice": 6}, ((1, 2, 30, 40),)).key()
    assert state.key() != ViewerState({"slice": 7, "window": [40, 80]}, state.drawn_regions).key()
    assert ViewerState().render_options() == {}
