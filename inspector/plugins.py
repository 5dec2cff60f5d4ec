"""Plugin registry: how modalities (and later detectors and VLM backends) join the workstation.

A plugin is a Python module or package in a plugins folder (the repository's `plugins/`, and the
user's own plugin folder) that defines ``register(registry)``. Built-in modalities use exactly the
same API as third-party ones. A plugin that fails to import or register is recorded in
``registry.errors`` and skipped: one broken plugin must never stop the workstation.

A modality lives in one folder (``plugins/<modality>/``): reader, renderer, detector, its viewer
(``viewer.py``), its prompt presets (``presets/*.json``) and its demo samples (``samples.py``).
Viewers are named by an import string (``f"{__name__}.viewer:ImageViewer"``) instead of a class,
so that loading plugins never imports Qt and the core stays headless; a viewer uses only the
public viewer API (`views.viewer_api`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.model import LoadedCase, Region, View, ViewMap

if TYPE_CHECKING:
    from inspector.detector.offline import OfflineDetector
    from inspector.prompt import PromptImage
    from inspector.samples import DemoSet

log = logging.getLogger(__name__)

# 2: a modality folder holds its viewer (using only `views.viewer_api`), presets and demo samples.
PLUGIN_API_VERSION = 2
# API 1 plugins still load: version 2 only added optional fields (presets, samples). Their viewer,
# if it named a module of `views` other than `views.viewer_api`, fails when it is opened, and says so.
SUPPORTED_PLUGIN_APIS = (1, 2)


class UnsupportedFileError(Exception):
    """No registered modality can read this file."""


@dataclass
class QueryView:
    """One case view as the model saw it: the sent image (size, scale) and the view's map."""

    image: PromptImage
    view_map: ViewMap | None


@dataclass
class OfflineContext:
    """What the workstation hands a modality's own offline detector.

    references(): the profile's normal references as (name, RGB uint8) images;
    reference_sources(): the file each of them came from (an id), in the same order.
    image_detector(): the built-in image detector fitted on those references (fitted once, cached;
        raises ``InspectionError`` with an operator message when the profile has no references).
    progress(fraction) and is_cancelled() must be honoured in long loops.
    """

    references: Callable[[], list[tuple[str, np.ndarray]]]
    image_detector: Callable[[], OfflineDetector]
    progress: Callable[[float], None]
    is_cancelled: Callable[[], bool]
    options: dict[str, Any] = field(default_factory=dict)  # the profile's settings for this modality
    # where each reference came from, aligned with references(): frames of one video share a source
    # (pass them as ``OfflineDetector.fit(..., sources=...)`` so calibration holds out whole sources)
    reference_sources: Callable[[], list[str]] = lambda: []
    render_options: dict[str, Any] = field(default_factory=dict)  # what the viewer shows (slice, frames)


@dataclass
class OfflineOutcome:
    """A modality detector's result; the workstation turns it into a stored verdict."""

    anomalous: bool
    score: float  # calibrated to 0..1, 0.5 = the decision threshold
    explanation: str
    regions: list[Region] = field(default_factory=list)
    heatmap: np.ndarray | None = None  # 2-D float 0..1 over what the viewer shows (image, slice, frame)
    details: dict[str, Any] = field(default_factory=dict)  # JSON: per-frame / per-sample scores ...
    summary: str = ""  # one line for the audit ("raw score 1.2, threshold 0.9, 3.1 s")
    model: str = ""


@dataclass
class ModalityPlugin:
    """Everything a modality contributes: reader, renderer for the VLM, viewer, presets.

    read: path -> LoadedCase; raises ``CaseReadError`` (or any exception) with a clear message.
        The path may be a folder when `claims_folder` accepted it.
    render: (loaded case, options) -> the views sent to the VLM, each with its map to the case.
        Options come from the profile (``settings["render"]``) and the viewer's current state
        (``CaseViewer.render_options()``: the current slice, a frame range ...).
    offline_input: loaded case -> RGB uint8 image the built-in image detector scores.
    offline_detect: (loaded case, context) -> OfflineOutcome, for modalities that score in their own
        way (per-frame, per-sample); it wins over `offline_input`. Neither: not supported.
    reference_images: loaded case -> [(name, RGB uint8)] stored as the profile's normal references
        when the operator adds a file of this modality as a reference (a depth-render montage of a
        normal cloud, frames of a normal video, a windowed slice). None: images only.
    locate: (answer item, query views, loaded case) -> Region in case terms or None. An answer item
        is a dict the parser found in the model's answer: ``{"box": [x0, y0, x1, y1], "view": ...}``
        or ``{"range": [start, end], "unit": "frames"|"ranges"|...}``. None: boxes on
        ``pixel_scale`` views only (`inspector.locate.locate_box`).
    sniff: (path, first 512 bytes) -> True if this modality reads it, for files without a known
        extension or with a misleading one.
    claims_folder: folder -> True if the whole folder is one case (a DICOM series, video frames).
    read_copy: (path of an unpacked embedded copy, the case's original path) -> LoadedCase, for
        readers that look beside the file (NAB labels in the tree around a series); None: `read`.
    viewer: import string of the Qt dock widget class that shows a loaded case (a `CaseViewer` of
        `views.viewer_api`), e.g. ``f"{__name__}.viewer:ImageViewer"`` for the plugin's viewer.py.
    presets: a folder of prompt presets (``<name>.json``, the fields of `inspector.prompt.Preset`)
        the modality brings, e.g. its `default_preset`; the bundled presets win on a name clash.
    samples: folder -> [`inspector.samples.DemoSet`]: writes the modality's demo files into the
        folder (once) and describes the demo profiles that use them.
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
    offline_detect: Callable[[LoadedCase, OfflineContext], OfflineOutcome] | None = None
    reference_images: Callable[[LoadedCase], list[tuple[str, np.ndarray]]] | None = None
    locate: Callable[[dict[str, Any], list[QueryView], LoadedCase], Region | None] | None = None
    claims_folder: Callable[[Path], bool] | None = None
    read_copy: Callable[[Path, Path], LoadedCase] | None = None
    presets: Path | None = None
    samples: Callable[[Path], list[DemoSet]] | None = None
    # sniffers are asked highest priority first: a strict sniffer for a special case of a common
    # container (an organized-XYZ TIFF among TIFF images) must come before the general one
    sniff_priority: int = 0


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
        if plugin.presets is not None:
            from inspector.prompt import add_preset_folder

            add_preset_folder(Path(plugin.presets))

    def modality(self, name: str) -> ModalityPlugin:
        try:
            return self.modalities[name]
        except KeyError:
            raise UnsupportedFileError(f"no plugin provides the modality {name!r}") from None

    def supported_extensions(self) -> list[str]:
        return sorted({ext for p in self.modalities.values() for ext in p.extensions})

    def folder_modality(self, folder: Path) -> ModalityPlugin | None:
        """The modality that reads this whole folder as one case, if any."""
        for plugin in self.modalities.values():
            if plugin.claims_folder is None:
                continue
            try:
                if plugin.claims_folder(Path(folder)):
                    return plugin
            except Exception:  # a buggy claim must not hide other plugins
                log.exception("folder check of %s failed on %s", plugin.name, folder)
        return None

    def expand_paths(self, paths: Iterable[str | Path]) -> list[Path]:
        """Dropped or chosen paths -> case paths: a folder a modality claims (a DICOM series, the
        frames of a video) is one case; other folders contribute their contents, recursively, sorted,
        hidden entries skipped."""
        out: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if not path.is_dir():
                out.append(path)
            elif self.folder_modality(path) is not None:
                out.append(path)
            else:
                children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
                out.extend(self.expand_paths(children))
        return out

    def modality_for_path(self, path: Path) -> ModalityPlugin:
        """Pick the modality for a file: by sniffing its first bytes, else by extension."""
        path = Path(path)
        if path.is_dir():
            plugin = self.folder_modality(path)
            if plugin is None:
                raise UnsupportedFileError(f"{path.name}: no modality reads this folder as one case")
            return plugin
        head = b""
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    head = fh.read(512)
            except OSError:
                head = b""
        for plugin in sorted(self.modalities.values(), key=lambda p: -p.sniff_priority):
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
    """The plugin's module. A built-in one is ``plugins.<name>``, the module the rest of the code and
    the tests import too (one copy of each class: a viewer made by the window *is* an instance of
    ``plugins.<name>.viewer.X``); a user's plugin gets a name of its own."""
    builtin = _is_bundled(file)
    module_name = f"plugins.{name}" if builtin else f"anomalens_plugin_{name}"
    if builtin and module_name in sys.modules:
        return sys.modules[module_name]
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


def _is_bundled(file: Path) -> bool:
    from inspector.paths import bundled_plugins_dir

    try:
        return file.resolve().parent.parent == bundled_plugins_dir().resolve() or (
            file.resolve().parent == bundled_plugins_dir().resolve()
        )
    except OSError:
        return False


# A plugin that loops or sleeps at import must not block start-up for ever: it is skipped after this.
PLUGIN_LOAD_TIMEOUT_S = 30.0


def discover(dirs: Iterable[Path] | None = None, timeout_s: float = PLUGIN_LOAD_TIMEOUT_S) -> PluginRegistry:
    """Load every plugin found in `dirs`; record, but survive, the ones that fail.

    A plugin fails when its import or `register` raises anything (`SystemExit` and
    `KeyboardInterrupt` included: a plugin never ends the workstation), asks for an API this
    version does not provide, or takes longer than `timeout_s` (its loading thread is abandoned;
    nothing it registers afterwards reaches the workstation).
    """
    registry = PluginRegistry()
    for folder in dirs if dirs is not None else default_plugin_dirs():
        for name, file in _plugin_candidates(Path(folder)):
            staged, error = _load_one(name, file, timeout_s)
            clashes = sorted(set(staged.modalities) & set(registry.modalities))
            if error is None and clashes:  # all of a plugin or nothing of it
                error = (f"ValueError: modality {clashes[0]!r} is already registered", "")
            if error is None:
                for plugin in staged.modalities.values():
                    registry.register_modality(plugin)
            if error is None:
                registry.loaded.append(name)
            else:
                message = f"plugin {name!r} ({file}) was skipped: {error[0]}"
                log.warning(message)
                registry.errors.append(PluginError(name, message, error[1]))
    return registry


def _load_one(name: str, file: Path, timeout_s: float) -> tuple[PluginRegistry, tuple[str, str] | None]:
    """Import and register one plugin into a registry of its own, in a thread with a time limit.
    Returns that registry and, when it failed, (reason, traceback)."""
    staged = PluginRegistry()
    outcome: list[tuple[str, str] | None] = []

    def load() -> None:
        try:
            module = _import_plugin(name, file)
            register = getattr(module, "register", None)
            if not callable(register):
                raise TypeError("it defines no register(registry) function")
            wanted = getattr(module, "PLUGIN_API_VERSION", PLUGIN_API_VERSION)
            if wanted not in SUPPORTED_PLUGIN_APIS:
                raise RuntimeError(
                    f"it needs plugin API {wanted}, this workstation provides "
                    f"{', '.join(map(str, SUPPORTED_PLUGIN_APIS))} (see docs/plugins.md)"
                )
            register(staged)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too: reported, not fatal
            outcome.append((f"{type(exc).__name__}: {exc}", traceback.format_exc()))

    thread = threading.Thread(target=load, name=f"plugin {name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive() or not outcome:
        return staged, (f"it did not finish loading within {timeout_s:g} s (it hangs at import or in register)", "")
    return staged, outcome[0]
