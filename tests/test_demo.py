"""The demo project: one profile per modality, every demo case readable, the start-up self-test.

This is what an operator sees on first start with no data, no endpoint and no network, so every
case in it must open and render.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from inspector.demo import build_demo_project
from inspector.inspection import InspectionService
from inspector.model import CaseStatus
from tests.conftest import ROOT

MODALITIES = {"image", "dicom", "point_cloud", "time_series", "video"}


def test_demo_project_has_every_modality_and_every_case_renders(tmp_path, registry):
    store = build_demo_project(tmp_path / "demo.anomalens", registry)
    service = InspectionService(store, registry)
    try:
        profiles = {p.modality for p in store.profiles()}
        assert profiles == MODALITIES
        cases = store.cases()
        assert {c.modality for c in cases} == MODALITIES
        errors = [(c.name, c.error) for c in cases if c.status == CaseStatus.ERROR]
        assert errors == []
        for case in cases:
            views = registry.modality(case.modality).render(service.load_case(case), {})
            assert views and all(v.image.dtype.name == "uint8" and v.image.ndim == 3 for v in views), case.name
            assert case.profile_id is not None
            assert store.profile(case.profile_id).modality == case.modality
        # Building again adds nothing (the demo is completed, not duplicated).
        count = len(cases)
    finally:
        service.close()
        store.close()
    with build_demo_project(tmp_path / "demo.anomalens", registry) as again:
        assert len(again.cases()) == count


@pytest.mark.gui  # the self-test opens the main window (Qt on the display)
def test_self_test_passes_from_source(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--self-test"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "self-test OK" in result.stdout
    assert "Set-of-Mark: " in result.stdout and "SAM mask generator ran" in result.stdout
    for modality in MODALITIES:
        assert modality in result.stdout


@pytest.mark.slow  # ~20 s on 2 cores: the offline detector of every modality
def test_offline_detectors_rank_each_demo_anomaly_above_its_normal_case(tmp_path, registry):
    """What a first-time user tries with no endpoint: every modality's demo must make sense offline."""
    store = build_demo_project(tmp_path / "demo.anomalens", registry)
    service = InspectionService(store, registry)
    try:
        profiles = {p.id: p for p in store.profiles()}
        scores: dict[str, dict[str, list[float]]] = {}
        flagged: dict[str, bool] = {}
        for case in store.cases():
            if case.ground_truth is None:
                continue
            verdict = service.inspect_offline(case, profiles[case.profile_id])
            scores.setdefault(case.modality, {}).setdefault(case.ground_truth, []).append(verdict.score)
            if case.ground_truth == "anomalous":
                flagged[case.modality] = flagged.get(case.modality, False) or bool(verdict.anomalous)
        assert set(scores) == MODALITIES
        assert all(flagged.values()), flagged  # every modality's demo shows a detection
        for modality, by_truth in scores.items():
            if "normal" in by_truth:  # and ranks its anomalies above its normal cases
                assert max(by_truth["anomalous"]) > max(by_truth["normal"]), (modality, by_truth)
    finally:
        service.close()
        store.close()
