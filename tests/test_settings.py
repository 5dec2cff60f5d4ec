"""Settings: round trip, corrupt files, and the API key kept out of the file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from inspector.settings import (
    MAX_RECENT,
    AppSettings,
    EndpointSettings,
    KeyringUnavailableError,
    load_settings,
    redact,
    resolve_api_key,
    save_settings,
    settings_path,
    store_api_key,
)

KEY = "sk-test-0123456789abcdef"


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend, so no test touches the real OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_defaults_when_no_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "settings.json")
    assert settings == AppSettings()
    assert not settings.endpoint.configured
    assert settings.load_warning is None


def test_default_location_is_the_user_folder(isolated_user_dirs: Path) -> None:
    assert settings_path() == isolated_user_dirs / "settings.json"
    settings = AppSettings(endpoint=EndpointSettings(base_url="http://gpu-box:8000/v1", model="qwen2.5-vl"))
    save_settings(settings)
    assert load_settings() == settings


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "settings.json"
    settings = AppSettings(
        endpoint=EndpointSettings(
            base_url="http://localhost:11434/v1",
            model="llava",
            api_key_env="MY_KEY",
            timeout_s=12.5,
            temperature=0.2,
            max_tokens=300,
            request_logprobs=False,
        ),
        recent_projects=["/a/one.anomalens", "/b/two.anomalens"],
        extra={"sam_checkpoint": "/models/sam_vit_b.pth"},
    )
    save_settings(settings, path)
    loaded = load_settings(path)
    assert loaded == settings
    assert loaded.endpoint.configured
    assert not list(path.parent.glob(".settings-*"))  # no temporary file left behind


def test_corrupt_file_gives_defaults_and_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"endpoint": {"base_url": "http://x', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        settings = load_settings(path)
    assert settings.endpoint == EndpointSettings()
    assert settings.load_warning and "could not be read" in settings.load_warning
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "settings.json.bad").read_text(encoding="utf-8").startswith('{"endpoint"')
    save_settings(settings, path)  # and the app can save over it afterwards
    assert load_settings(path).load_warning is None


@pytest.mark.parametrize("content", ["[1, 2, 3]", "null", "\xff\xfe garbage", ""])
def test_other_unreadable_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content.encode("latin-1"))
    settings = load_settings(path)
    assert settings.endpoint == EndpointSettings() and settings.load_warning


def test_wrong_types_fall_back_per_field(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "endpoint": {
                    "base_url": "http://h/v1",
                    "model": 7,
                    "timeout_s": "soon",
                    "max_tokens": 256,
                    "request_logprobs": "yes",
                },
                "recent_projects": ["/p", 3, "/p", "/q"],
            }
        ),
        encoding="utf-8",
    )
    settings = load_settings(path)
    assert settings.endpoint.base_url == "http://h/v1"
    assert settings.endpoint.model == "" and settings.endpoint.timeout_s == 60.0
    assert settings.endpoint.max_tokens == 256 and settings.endpoint.request_logprobs is True
    assert settings.recent_projects == ["/p", "/q"]
    assert "endpoint.model" in (settings.load_warning or "")


def test_key_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "settings.json"
    settings = AppSettings(endpoint=EndpointSettings(base_url="https://api.openai.com/v1", model="gpt-4o"))
    settings.extra["api_key"] = KEY  # even if some code puts it there
    assert resolve_api_key(settings.endpoint) == KEY
    save_settings(settings, path)
    assert KEY not in path.read_text(encoding="utf-8")


def test_key_typed_into_the_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps({"endpoint": {"base_url": "http://h/v1", "model": "m", "api_key": KEY}}), encoding="utf-8"
    )
    settings = load_settings(path)
    assert "secret field" in (settings.load_warning or "")
    save_settings(settings, path)
    assert KEY not in path.read_text(encoding="utf-8")


def test_recent_projects_most_recent_first_deduplicated_and_capped(tmp_path: Path) -> None:
    settings = AppSettings()
    for i in range(MAX_RECENT + 3):
        settings.add_recent(tmp_path / f"p{i}.anomalens")
    settings.add_recent(tmp_path / "p5.anomalens")
    assert len(settings.recent_projects) == MAX_RECENT
    assert settings.recent_projects[0] == str(tmp_path / "p5.anomalens")
    assert len(set(settings.recent_projects)) == MAX_RECENT
    assert settings.recent_projects[1] == str(tmp_path / f"p{MAX_RECENT + 2}.anomalens")


def test_key_from_named_environment_variable(monkeypatch: pytest.MonkeyPatch, memory_keyring) -> None:
    endpoint = EndpointSettings(base_url="http://h/v1", model="m", api_key_env="PLANT_VLM_KEY")
    monkeypatch.delenv("PLANT_VLM_KEY", raising=False)
    assert resolve_api_key(endpoint) is None
    monkeypatch.setenv("PLANT_VLM_KEY", f"  {KEY}\n")
    assert resolve_api_key(endpoint) == KEY


def test_environment_wins_over_keyring(monkeypatch: pytest.MonkeyPatch, memory_keyring) -> None:
    endpoint = EndpointSettings(base_url="http://h/v1", model="m")
    store_api_key("http://h/v1", "from-keyring")
    assert resolve_api_key(endpoint) == "from-keyring"
    assert memory_keyring.store == {("anomalens", "http://h/v1"): "from-keyring"}
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert resolve_api_key(endpoint) == KEY
    assert resolve_api_key(EndpointSettings(base_url="http://other/v1", model="m", api_key_env="")) is None


def test_without_keyring_store_fails_clearly_and_resolve_returns_none(no_keyring) -> None:
    with pytest.raises(KeyringUnavailableError, match="environment variable") as info:
        store_api_key("http://h/v1", KEY)
    assert KEY not in str(info.value)
    assert resolve_api_key(EndpointSettings(base_url="http://h/v1", model="m")) is None


def test_redact() -> None:
    assert redact(f"Incorrect API key provided: {KEY}.", [KEY]) == "Incorrect API key provided: ***."
    assert redact("nothing here", [None, ""]) == "nothing here"
    assert redact("abc-long abc", ["abc", "abc-long"]) == "*** ***"
