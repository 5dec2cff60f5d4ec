"""Evaluation on the project's own cases: metrics per group, A/B by prompt variant and model, exports."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from inspector.evaluation import collect_rows, evaluate, to_csv, to_html, to_json
from inspector.metrics import average_precision, roc_curve
from inspector.model import Case, Decision, ParseStatus, Profile, ScoreSource, Verdict, VerdictSource
from inspector.store import ProjectStore


def test_average_precision_and_roc_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    labels = np.array([True, False, True, False])
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)
    assert roc_curve(scores, labels) == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    tied = np.array([0.5, 0.5, 0.5, 0.5])
    assert average_precision(tied, labels) == pytest.approx(0.5)  # ties cannot rank: base rate


def _prompt(store: ProjectStore, sha: str, preset: str, shots: int) -> int:
    record = {
        "preset": preset,
        "preset_version": "1.0",
        "switches": {"task": True, "class_info": True, "standards": True, "references": True, "max_references": shots},
    }
    return store.save_prompt(sha, "system", "text", record, [])


@pytest.fixture
def project(tmp_path):
    """Six labelled cases, each answered by two prompt variants (A/B) of one model, plus offline."""
    store = ProjectStore(tmp_path / "p.anomalens")
    profile = store.save_profile(Profile(name="Disc", class_name="brake disc"))
    prompt_a, prompt_b = _prompt(store, "a" * 64, "industrial", 1), _prompt(store, "b" * 64, "industrial", 0)
    truth = [True, True, True, False, False, False]
    score_a = [0.9, 0.8, 0.4, 0.3, 0.2, 0.1]  # variant A ranks perfectly, one miss at 0.5
    score_b = [0.6, 0.4, 0.7, 0.8, 0.2, 0.3]  # variant B is worse
    for i, anomalous in enumerate(truth):
        case = store.add_case(
            Case(name=f"c{i}", modality="image", source_path="/x", source_sha256=f"{i:064d}", profile_id=profile.id)
        )
        if i == 0:
            store.record_decision(Decision(case_id=case.id, label="anomalous"))
        else:
            store.update_case(case.id, ground_truth="anomalous" if anomalous else "normal")
        for prompt_id, scores in ((prompt_a, score_a), (prompt_b, score_b)):
            store.save_verdict(
                Verdict(
                    case_id=case.id,
                    source=VerdictSource.VLM,
                    anomalous=scores[i] >= 0.5,
                    score=scores[i],
                    score_source=ScoreSource.LOGPROB,
                    model="model-x",
                    prompt_id=prompt_id,
                )
            )
        store.save_verdict(
            Verdict(
                case_id=case.id,
                source=VerdictSource.VLM,
                anomalous=None,
                score=None,
                score_source=ScoreSource.NONE,
                parse_status=ParseStatus.UNPARSED,
                model="model-y",
                prompt_id=prompt_a,
            )
            if i == 5
            else Verdict(
                case_id=case.id,
                source=VerdictSource.OFFLINE,
                anomalous=anomalous,
                score=0.5,
                score_source=ScoreSource.OFFLINE_CALIBRATED,
                model="offline",
            )
        )
    unlabelled = store.add_case(Case(name="u", modality="image", source_path="/y", source_sha256="9" * 64))
    store.save_verdict(
        Verdict(
            case_id=unlabelled.id,
            source=VerdictSource.VLM,
            anomalous=True,
            score=0.9,
            score_source=ScoreSource.LOGPROB,
            model="model-x",
            prompt_id=prompt_a,
        )
    )
    yield store
    store.close()


def test_rows_use_decisions_then_import_labels_and_skip_unlabelled(project):
    rows = collect_rows(project)
    assert len(rows) == 18 and "u" not in {r.case for r in rows}
    assert {r.variant for r in rows} == {"industrial 1.0, 1 shots", "industrial 1.0, 0 shots", "offline detector"}


def test_a_b_comparison_by_prompt_variant(project):
    results = evaluate(project)
    by_variant = {g.key["variant"]: g for g in results["prompt variant"] if g.key["source"] == "vlm"}
    a, b = by_variant["industrial 1.0, 1 shots"], by_variant["industrial 1.0, 0 shots"]
    assert a.auroc == pytest.approx(1.0) and a.ap == pytest.approx(1.0)
    assert a.n == 7 and a.unparsed == 1 and a.accuracy == pytest.approx(5 / 6)  # c2 missed; unparsed not scored
    assert a.precision == pytest.approx(1.0) and a.recall == pytest.approx(2 / 3)
    assert b.auroc == pytest.approx(auroc_by_hand([0.6, 0.4, 0.7], [0.8, 0.2, 0.3]))
    assert b.auroc < a.auroc
    models = {g.key["model"]: g for g in results["model"]}
    assert models["model-y"].n == 1 and models["model-y"].unparsed_rate == 1.0 and models["model-y"].accuracy is None


def auroc_by_hand(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_exports_csv_json_and_a_self_contained_html(project):
    results = evaluate(project)
    table = list(csv.reader(io.StringIO(to_csv(results))))
    assert table[0][:3] == ["grouping", "group", "n"] and any(r[0] == "prompt variant" for r in table[1:])
    data = json.loads(to_json(results))
    assert data["overall"][0]["n"] == 18
    page = to_html(results)
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


@pytest.mark.gui
def test_dashboard_shows_groups_and_exports(qtbot, tmp_path, registry, project):
    from inspector.settings import AppSettings
    from views.main_window import MainWindow

    path = project.path
    project.close()
    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    assert window.open_project(path)
    window.show_evaluation()
    qtbot.waitUntil(lambda: getattr(window, "evaluation_dialog", None) is not None, timeout=20000)
    dialog = window.evaluation_dialog
    dialog.grouping.setCurrentText("prompt variant")
    labels = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert "source=vlm; variant=industrial 1.0, 1 shots" in labels
    report = dialog.export("html", str(tmp_path / "report.html"))
    assert report.read_text().startswith("<!doctype html>")
    assert json.loads(dialog.export("json", str(tmp_path / "r.json")).read_text())["overall"][0]["n"] == 18
    window.force_close = True
    window.close()
