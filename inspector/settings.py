"""Application settings: the VLM endpoint and the recent-projects list, as JSON in the user folder.

Why JSON and not QSettings: `inspector/` must stay headless and testable, and a plain file is easy
to inspect and to copy between workstations. Two rules shape this module:

* A broken settings file must never stop the workstation from starting: it is set aside as
  ``settings.json.bad`` and the defaults are used, with a warning (logged and kept on the
  returned object, so the interface can show it).
* The API key is never written here, nor to logs or exception messages. It comes from an
  environment variable (named in the settings) or from the OS keyring.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from inspector.paths import user_data_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
SETTINGS_VERSION = 1
KEYRING_SERVICE = "anomalens"
MAX_RECENT = 10
# Keys that must never be persisted, even if a user typed them into the file by hand.
_SECRET_FIELDS = frozenset({"api_key", "apikey", "key", "secret", "token", "password"})


class KeyringUnavailableError(RuntimeError):
    """No usable OS keyring: the key has to come from the environment variable instead."""


@dataclass
class EndpointSettings:
    """Where the VLM lives. An empty base URL means "no endpoint": the offline detector is used."""

    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 512
    request_logprobs: bool = True
    # ask for the verdict through the endpoint's JSON-schema output where it has one (dropped once,
    # and remembered, when a server refuses it)
    structured_output: bool = True
    # when an answer cannot be read (and is not a refusal), ask once more in the same conversation
    # for the verdict as JSON (inspector/vlm/extraction.py); costs one request for such answers
    extraction_turn: bool = True

    @property
    def configured(self) -> bool:
        """True when a VLM can be asked: both the address and the model name are set."""
        return bool(self.base_url.strip() and self.model.strip())

    @classmethod
    def from_dict(cls, data: dict[str, Any], warnings: list[str] | None = None) -> EndpointSettings:
        """Tolerant reader: unknown keys are ignored, values of the wrong type fall back to defaults."""
        result = cls()
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            default = getattr(result, f.name)
            coerced = _coerce(value, type(default))
            if coerced is None:
                if warnings is not None:
                    warnings.append(f"endpoint.{f.name}: ignored invalid value, using {default!r}")
                continue
            setattr(result, f.name, coerced)
        if result.timeout_s <= 0:
            result.timeout_s = cls.timeout_s
        if result.max_tokens <= 0:
            result.max_tokens = cls.max_tokens
        return result


def _coerce(value: Any, target: type) -> Any:
    """Coerce a JSON value to a settings field type, or None when it does not fit."""
    if target is bool:
        return value if isinstance(value, bool) else None
    if target is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if target is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None
    if target is str:
        return value if isinstance(value, str) else None
    return None


@dataclass
class AppSettings:
    """Everything the workstation remembers between sessions (except secrets).

    `extra` keeps top-level keys this version does not know (written by other parts of the app or
    a newer version), so that saving never silently drops them. `load_warning` is not persisted.
    """

    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    recent_projects: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    load_warning: str | None = field(default=None, compare=False, repr=False)

    def add_recent(self, path: str | os.PathLike[str]) -> None:
        """Put a project first in the recent list (de-duplicated, at most MAX_RECENT entries)."""
        entry = str(Path(path).expanduser().absolute())
        self.recent_projects = [entry] + [p for p in self.recent_projects if p != entry]
        del self.recent_projects[MAX_RECENT:]

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.extra.items() if k.lower() not in _SECRET_FIELDS}
        data.update(
            version=SETTINGS_VERSION,
            endpoint=asdict(self.endpoint),
            recent_projects=list(self.recent_projects),
        )
        return data


def settings_path() -> Path:
    return user_data_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> AppSettings:
    """Read the settings; a missing file gives defaults, a corrupt one gives defaults plus a warning."""
    path = Path(path) if path is not None else settings_path()
    if not path.exists():
        return AppSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("the top level is not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        return _defaults_after_corruption(path, f"{type(exc).__name__}: {exc}")

    warnings: list[str] = []
    endpoint_data = data.get("endpoint", {})
    if not isinstance(endpoint_data, dict):
        warnings.append("endpoint: not an object, using defaults")
        endpoint_data = {}
    if any(k.lower() in _SECRET_FIELDS for k in endpoint_data):
        warnings.append(
            "endpoint: a secret field was found in the settings file and ignored; "
            "store the API key in the keyring or an environment variable"
        )
    endpoint = EndpointSettings.from_dict(endpoint_data, warnings)

    recent_raw = data.get("recent_projects", [])
    recent: list[str] = []
    if isinstance(recent_raw, list):
        for item in recent_raw:
            if isinstance(item, str) and item and item not in recent:
                recent.append(item)
    else:
        warnings.append("recent_projects: not a list, ignored")

    known = {"version", "endpoint", "recent_projects"}
    extra = {k: v for k, v in data.items() if k not in known and k.lower() not in _SECRET_FIELDS}
    settings = AppSettings(endpoint=endpoint, recent_projects=recent[:MAX_RECENT], extra=extra)
    if warnings:
        settings.load_warning = "; ".join(warnings)
        log.warning("Settings file %s: %s", path, settings.load_warning)
    return settings


def _defaults_after_corruption(path: Path, reason: str) -> AppSettings:
    """Keep the unreadable file aside (nothing lost) and start from defaults."""
    backup = path.with_name(path.name + ".bad")
    try:
        os.replace(path, backup)
        where = f"; the unreadable file was kept as {backup}"
    except OSError:
        where = ""
    message = f"Settings file {path} could not be read ({reason}); default settings are used{where}"
    log.warning(message)
    return AppSettings(load_warning=message)


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    """Write atomically (temporary file + rename), so a crash never leaves half a settings file."""
    path = Path(path) if path is not None else settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise


def resolve_api_key(endpoint: EndpointSettings) -> str | None:
    """The key for an endpoint: the named environment variable first, then the OS keyring.

    Returns None when there is none (local servers usually need no key). Never logs the value.
    """
    if endpoint.api_key_env:
        value = os.environ.get(endpoint.api_key_env, "").strip()
        if value:
            return value
    if not endpoint.base_url:
        return None
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(KEYRING_SERVICE, endpoint.base_url)
    except (KeyringError, RuntimeError, OSError) as exc:  # a backend failure means "no key here"
        log.debug("No API key from the keyring (%s)", type(exc).__name__)
        return None
    return value or None


def _usable_keyring() -> Any:
    """The keyring module, once we know a real backend (not the fail/null one) is behind it."""
    import keyring

    backend = keyring.get_keyring()
    candidates = list(getattr(backend, "backends", None) or [backend])
    unusable = ("keyring.backends.fail", "keyring.backends.null")
    if all(type(b).__module__ in unusable for b in candidates):
        raise KeyringUnavailableError(
            "No OS keyring is available on this machine, so the API key cannot be stored. "
            "Set it in an environment variable instead (Settings → Endpoint → key variable)."
        )
    return keyring


def store_api_key(base_url: str, key: str) -> None:
    """Store a key for an endpoint in the OS keyring (service "anomalens", username = base URL)."""
    if not base_url:
        raise ValueError("An endpoint address is needed to store its API key")
    keyring = _usable_keyring()
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, base_url, key)
    except (KeyringError, RuntimeError, OSError) as exc:
        # The backend's message is not shown: some include the value they failed to write.
        raise KeyringUnavailableError(f"The OS keyring refused to store the API key ({type(exc).__name__}).") from None


# Keys that belong to a provider, by the variable they are usually kept in: sending one to any other
# host (a local vLLM, a colleague's proxy) gives that host the provider account. Asked once per host.
PROVIDER_KEY_DOMAINS = {"OPENAI_API_KEY": "openai.com"}
CONFIRMED_KEY_HOSTS = "confirmed_key_hosts"  # settings file: {variable: [host, ...]} the operator allowed


def foreign_key_host(endpoint: EndpointSettings) -> tuple[str, str] | None:
    """(variable, host) when the endpoint would send a provider's key from the environment to a host
    outside that provider's domain; None when it would not (no such key set, or the provider's own
    host)."""
    from urllib.parse import urlsplit

    variable = (endpoint.api_key_env or "").strip()
    domain = PROVIDER_KEY_DOMAINS.get(variable)
    host = (urlsplit(endpoint.base_url.strip()).hostname or "").lower()
    if domain is None or not host or not os.environ.get(variable, "").strip():
        return None
    return None if host_is_within(host, domain) else (variable, host)


def key_host_confirmed(settings: AppSettings, variable: str, host: str) -> bool:
    confirmed = settings.extra.get(CONFIRMED_KEY_HOSTS)
    return isinstance(confirmed, dict) and host in (confirmed.get(variable) or [])


def confirm_key_host(settings: AppSettings, variable: str, host: str) -> None:
    """Remember that the operator allowed the key in `variable` to go to `host` (saved with the settings)."""
    confirmed = settings.extra.get(CONFIRMED_KEY_HOSTS)
    confirmed = dict(confirmed) if isinstance(confirmed, dict) else {}
    hosts = [h for h in (confirmed.get(variable) or []) if isinstance(h, str)]
    if host not in hosts:
        hosts.append(host)
    confirmed[variable] = hosts
    settings.extra[CONFIRMED_KEY_HOSTS] = confirmed


def key_host_problem(settings: AppSettings, endpoint: EndpointSettings | None = None) -> tuple[str, str] | None:
    """(variable, host) when a provider's key would go to a host the operator has not allowed yet."""
    found = foreign_key_host(endpoint or settings.endpoint)
    if found is None or key_host_confirmed(settings, *found):
        return None
    return found


def host_is_within(host: str, domain: str) -> bool:
    """Whether `host` is `domain` or one of its subdomains: ``api.openai.com`` is within
    ``openai.com``; ``notopenai.com`` and ``openai.com.evil.net`` are not."""
    host, domain = host.lower().rstrip("."), domain.lower().strip(".")
    return host == domain or host.endswith("." + domain)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret with ``***`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
