"""The settings and profile dialogs, driven as an operator would."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.settings import AppSettings, EndpointSettings, load_settings, save_settings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.test_settings import memory_keyring  # noqa: F401 - fixture
from views.profile_dialog import ProfileDialog
from views.settings_dialog import SettingsDialog

pytestmark = pytest.mark.gui


def test_key_typed_in_settings_goes_to_the_keyring_only(qtbot, tmp_path, memory_keyring):  # noqa: F811
    dialog = SettingsDialog(EndpointSettings())
    qtbot.addWidget(dialog)
    qtbot.keyClicks(dialog.base_url, "http://vllm.plant.local:8000/v1")
    qtbot.keyClicks(dialog.model, "Qwen2.5-VL-7B-Instruct")
    qtbot.keyClicks(dialog.key, "sk-test-SECRET-123")
    dialog.accept()
    endpoint = dialog.endpoint()
    assert endpoint.configured and endpoint.model == "Qwen2.5-VL-7B-Instruct"
    assert memory_keyring.store[("anomalens", "http://vllm.plant.local:8000/v1")] == "sk-test-SECRET-123"
    assert dialog.key.text() == ""
    settings = AppSettings(endpoint=endpoint)
    path = tmp_path / "settings.json"
    save_settings(settings, path)
    assert "SECRET" not in path.read_text()
    assert load_settings(path).endpoint.base_url == "http://vllm.plant.local:8000/v1"


def test_the_extraction_turn_setting_round_trips(qtbot, tmp_path):
    dialog = SettingsDialog(EndpointSettings(base_url="http://127.0.0.1:8080/v1", model="m", extraction_turn=False))
    qtbot.addWidget(dialog)
    assert not dialog.extraction.isChecked()
    qtbot.mouseClick(dialog.extraction, Qt.MouseButton.LeftButton)
    assert dialog.endpoint().extraction_turn is True
    path = tmp_path / "settings.json"
    save_settings(AppSettings(endpoint=dialog.endpoint()), path)
    assert load_settings(path).endpoint.extraction_turn is True


def test_warns_before_an_openai_key_goes_to_another_host(qtbot, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abc")
    dialog = SettingsDialog(EndpointSettings(base_url="http://10.0.0.5:1234/v1", model="llava"))
    qtbot.addWidget(dialog)
    assert "10.0.0.5" in dialog.key_warning.text()
    dialog.key_env.clear()
    assert dialog.key_warning.text() == ""
    assert dialog.endpoint().api_key_env == ""
    dialog.base_url.setText("https://api.openai.com/v1")
    dialog.key_env.setText("OPENAI_API_KEY")
    assert dialog.key_warning.text() == ""
    assert "sk-live-abc" not in json.dumps(vars(dialog.endpoint()))


def test_profile_dialog_adds_and_removes_references(qtbot, tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    paths = []
    for seed in range(3):
        path = tmp_path / f"ref{seed}.png"
        Image.fromarray(textured_image(seed, (40, 50))).save(path)
        paths.append(str(path))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dialog = ProfileDialog(service, None)
    qtbot.addWidget(dialog)
    qtbot.keyClicks(dialog.name, "Tile line 2")
    qtbot.keyClicks(dialog.class_name, "magnetic tile")
    dialog.preset.setCurrentText("industrial")
    # A broken file among the references: the good ones are added, the bad one is reported.
    from PySide6.QtWidgets import QMessageBox

    warnings = []
    original = QMessageBox.warning
    QMessageBox.warning = staticmethod(lambda parent, title, text: warnings.append(text))
    try:
        dialog._add_reference_paths([*paths, str(broken)])
        assert dialog.adding and not dialog.buttons.button(dialog.buttons.StandardButton.Save).isEnabled()
        qtbot.waitUntil(lambda: not dialog.adding, timeout=20000)
    finally:
        QMessageBox.warning = original
    assert dialog.reference_count() == 3
    assert "broken.png" in warnings[0]
    dialog.references.item(0).setSelected(True)
    dialog._remove_selected()
    assert dialog.reference_count() == 2
    dialog.accept()
    saved = store.profiles()
    assert [p.name for p in saved] == ["Tile line 2"] and saved[0].class_name == "magnetic tile"
    assert len(store.references(saved[0].id)) == 2
    reopened = ProfileDialog(service, Profile(**{**vars(saved[0])}))
    qtbot.addWidget(reopened)
    assert reopened.reference_count() == 2
    assert reopened.references.item(0).data(Qt.ItemDataRole.UserRole) is not None
    store.close()


def test_new_profile_takes_the_modality_preset_and_an_existing_one_keeps_its_own(qtbot, tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    dialog = ProfileDialog(service, Profile(name="", modality="image", domain_preset="industrial"))
    qtbot.addWidget(dialog)
    dialog.modality.setCurrentIndex(dialog.modality.findData("dicom"))
    assert dialog.preset.currentText() == registry.modality("dicom").default_preset == "medical"
    dialog.name.setText("Head CT")
    dialog.accept()
    saved = store.profiles()[0]
    assert (saved.modality, saved.domain_preset) == ("dicom", "medical")
    existing = ProfileDialog(service, saved)
    qtbot.addWidget(existing)
    existing.modality.setCurrentIndex(existing.modality.findData("image"))
    assert existing.preset.currentText() == "medical"  # an operator's choice is not overwritten
    store.close()
