"""Operator decisions feeding the profile: normal cases become references, defects become words."""

from __future__ import annotations

import pytest
from PIL import Image

from inspector.feedback import FeedbackError, add_expected_defect, changes, changes_since, promote_to_reference
from inspector.inspection import InspectionService
from inspector.model import Decision, Profile
from inspector.prompt import PromptSwitches
from inspector.store import ProjectStore
from tests.conftest import textured_image


@pytest.fixture
def setup(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Disc", class_name="brake disc", expected_defects="scratch"))
    service.add_reference_array(profile.id, "ref", textured_image(1, (64, 80)))
    cases = []
    for seed in (2, 3):
        path = tmp_path / f"part{seed}.png"
        Image.fromarray(textured_image(seed, (64, 80))).save(path)
        cases.append(service.import_file(path, profile.id)[0])
    yield store, service, profile, cases
    service.close()
    store.close()


def test_a_confirmed_normal_case_becomes_a_reference_and_later_verdicts_are_told_apart(setup):
    store, service, profile, (normal, other) = setup
    before = service.inspect_offline(other, profile)
    with pytest.raises(FeedbackError, match="confirmed as normal"):
        promote_to_reference(service, normal, profile)  # no decision yet
    store.record_decision(Decision(case_id=normal.id, label="normal"))
    assert promote_to_reference(service, normal, profile) == 1
    refs = store.references(profile.id)
    assert [r.name for r in refs] == ["ref", "part2.png"] and refs[1].source == f"case {normal.id}"
    saved = store.profile(profile.id)
    assert [c.what for c in changes(saved)] == ["normal reference added from case part2.png"]
    after = service.inspect_offline(other, saved)
    assert [c.what for c in changes_since(saved, before)] == ["normal reference added from case part2.png"]
    assert changes_since(saved, after) == []
    # the prompt now carries the new reference too
    prompt = service.compose_prompt(other, saved, PromptSwitches(max_references=4))
    assert [img.label for img in prompt.references] == ["ref", "part2.png"]


def test_a_confirmed_defect_joins_the_expected_defects_once(setup):
    store, service, profile, (case, _) = setup
    add_expected_defect(service, profile, "  hairline crack at the rim. ", case)
    saved = store.profile(profile.id)
    assert saved.expected_defects == "scratch\nhairline crack at the rim"
    assert changes(saved)[-1].what == "expected defect added: hairline crack at the rim (from case part2.png)"
    with pytest.raises(FeedbackError, match="already"):
        add_expected_defect(service, saved, "Hairline crack at the rim")
    with pytest.raises(FeedbackError, match="Describe"):
        add_expected_defect(service, saved, "   ")
    prompt = service.compose_prompt(case, saved)
    assert "scratch; hairline crack at the rim" in prompt.text


@pytest.mark.gui
def test_window_marks_a_verdict_made_before_a_profile_change(qtbot, tmp_path, registry, setup):
    from inspector.settings import AppSettings
    from views.main_window import MainWindow

    store, service, profile, (normal, other) = setup
    service.inspect_offline(other, profile)
    store.record_decision(Decision(case_id=normal.id, label="normal"))
    path = store.path
    store.close()
    window = MainWindow(AppSettings(), registry, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.show()
    assert window.open_project(path)
    with qtbot.waitSignal(window.case_shown, timeout=20000):
        window.case_browser.select_case(normal.id)
    assert window.act_promote.isEnabled() and not window.act_add_defect.isEnabled()
    with qtbot.waitSignal(window.case_shown, timeout=30000):  # the prompt is recomposed with the new reference
        window.promote_current_case()
    assert len(window.store.references(profile.id)) == 2
    with qtbot.waitSignal(window.case_shown, timeout=20000):
        window.case_browser.select_case(other.id)
    note = window.verdict_panel.profile_note
    assert note.isVisible() and "normal reference added from case part2.png" in note.text()
    window.force_close = True
    window.close()
