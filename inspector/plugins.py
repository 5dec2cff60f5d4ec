"""Plugin registry: how modalities (and later detectors and VLM backends) join the workstation.

A plugin is a Python module or package in a plugins folder (the repository's `plugins/`, and the
user's own plugin folder) that defines ``register(registry)``. Built-in modalities use exactly the
same API as third-party ones. A plugin that fails to import or register is recorded in
``registry.errors`` and skipped: one broken plugin must never stop the workstation.

Viewers are named by an import string (``"views.image_viewer:ImageViewer"``) instead of a class,
so that loading plugins never imports Qt and the core stays headless.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.model import LoadedCase, View

log = logging.getLogger(__name__)

PLUGIN_API_VERSION = 1


class UnsupportedFileError(Exception):
    """No registered modality can read this file."""


@dataclass
class ModalityPlugin:
    """Everything a modality contributes: reader, renderer for the VLM, viewer, presets.

    read: path -> LoadedCase; raises ``CaseReadError`` (or any exception) with a clear message.
    render: (loaded case, options) -> the views sent to the VLM, each with its map to the case.
    offline_input: loaded case -> RGB uint8 image the offline detector scores (None: not supported).
    sniff: (path, first 512 bytes) -> True if this modality reads it, for files without a known
        extension or with a misleading one.
    viewer: import string of the Qt dock widget class that shows a loaded case.
    """

    name: str
    title: str
    extensions: tuple[str, ...]
    read: Callable[[Path], LoadedCase]
    render: Callable[[LoadedCase, dict[str, Any]], list[View]]
    offline_input: Callable[[LoadedCase], np.ndarray] | None = None
    sniff: Callable[[Path, bytes], bool] | None = None
    viewer: str | None = None
    default_preset: str = "industrial"
    file_filter: str = ""  # e.g. "Images (*.png *.jpg)" for file dialogs


@dataclass
class PluginError:
    plugin: str
    message: str
    detail: str = ""


@dataclass
class PluginRegistry:
    modalities: dict[str, ModalityPlugin] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def register_modality(self, plugin: ModalityPlugin) -> None:
        if plugin.name in self.modalities:
            raise ValueError(f"modality {plugin.name!r} is already registered")
        plugin.extensions = tuple(e.lower() for e in plugin.extensions)
        self.modalities[plugin.name] = plugin

    def modality(self, name: str) -> ModalityPlugin:
        try:
            return self.modalities[name]
        except KeyError:
            raise UnsupportedFileError(f"no plugin provides the modality {name!r}") from None

    def supported_extensions(self) -> list[str]:
        return sorted({ext for p in self.modalities.values() for ext in p.extensions})

    def modality_for_path(self, path: Path) -> ModalityPlugin:
        """Pick the modality for a file: by sniffing its first bytes, else by extension."""
        path = Path(path)
        head = b""
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    head = fh.read(512)
            except OSError:
                head = b""
        for plugin in self.modalities.values():
            if plugin.sniff is not None and head:
                try:
                    if plugin.sniff(path, head):
                        return plugin
                except Exception:  # a sniffer bug must not hide other plugins
                    log.exception("sniffer of %s failed on %s", plugin.name, path)
        suffix = path.suffix.lower()
        for plugin in self.modalities.values():
            if suffix in plugin.extensions:
                return plugin
        known = ", ".join(self.supported_extensions()) or "none"
        raise UnsupportedFileError(
            f"{path.name}: unsupported file type {suffix or '(no extension)'}; supported: {known}"
        )


def default_plugin_dirs() -> list[Path]:
    """The repository's (or the packaged app's) `plugins/` folder, then the user's."""
    from inspector.paths import bundled_plugins_dir, user_plugins_dir

    return [bundled_plugins_dir(), user_plugins_dir()]


def _plugin_candidates(folder: Path) -> Iterable[tuple[str, Path]]:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            yield entry.name, entry / "__init__.py"
        elif entry.suffix == ".py":
            yield entry.stem, entry


def _import_plugin(name: str, file: Path) -> Any:
    module_name = f"anomalens_plugin_{name}"
    spec = importlib.util.spec_from_file_location(
        module_name, file, submodule_search_locations=[str(file.parent)] if file.name == "__init__.py" else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def discover(dirs: Iterable[Path] | None = None) -> PluginRegistry:
    """Load every plugin found in `dirs`; record, but survive, the ones that fail."""
    registry = PluginRegistry()
    for folder in dirs if dirs is not None else default_plugin_dirs():
        for name, file in _plugin_candidates(Path(folder)):
            try:
                module = _import_plugin(name, file)
                register = getattr(module, "register", None)
                if not callable(register):
                    raise TypeError("it defines no register(registry) function")
                wanted = getattr(module, "PLUGIN_API_VERSION", PLUGIN_API_VERSION)
                if wanted != PLUGIN_API_VERSION:
                    raise RuntimeError(
                        f"it needs plugin API {wanted}, this workstation provides {PLUGIN_API_VERSION}"
                    )
                register(registry)
                registry.loaded.append(name)
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
                message = f"plugin {name!r} ({file}) was skipped: {type(exc).__name__}: {exc}"
                log.warning(message)
                registry.errors.append(PluginError(name, message, traceback.format_exc()))
    return registry
