"""The demo project shipped with the application: a profile per modality, references, cases.

Built from every modality plugin's demo samples (`ModalityPlugin.samples`: the image plugin's
bundled CC0 brick panels, the other modalities' generated files), so the workstation can be tried
with no data of one's own, no endpoint and no network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inspector.inspection import InspectionService
from inspector.plugins import ModalityPlugin, PluginRegistry
from inspector.samples import DemoSet
from inspector.store import ProjectStore

log = logging.getLogger(__name__)

# The demo opens on the brick panels; the other built-in modalities follow in this order, then any
# other plugin's samples by name.
DEMO_ORDER = ("image", "time_series", "point_cloud", "video", "dicom")


def build_demo_project(path: Path, registry: PluginRegistry, with_other_modalities: bool = True) -> ProjectStore:
    """Create (or complete, if profiles are missing) the demo project at `path`.

    Generated samples go to a folder beside the project. A modality whose plugin is missing, has
    no samples or fails is skipped with a log line: the rest of the demo still opens.
    """
    store = ProjectStore(path)
    existing = {p.name for p in store.profiles()}
    service = InspectionService(store, registry)
    folder = path.parent / f"{path.stem}-files"
    try:
        for plugin in _ordered(registry):
            if not with_other_modalities and plugin.name != "image":
                continue
            try:
                sets = plugin.samples(folder) if plugin.samples is not None else []
            except Exception:  # a demo generator problem must not stop the workstation
                log.exception("the demo samples of %s could not be generated", plugin.name)
                continue
            for demo in sets:
                if demo.profile.name not in existing:
                    _add(service, demo)
    finally:
        service.close()
    return store


def _ordered(registry: PluginRegistry) -> list[ModalityPlugin]:
    rank = {name: i for i, name in enumerate(DEMO_ORDER)}
    return sorted(registry.modalities.values(), key=lambda p: (rank.get(p.name, len(rank)), p.name))


def _add(service: InspectionService, demo: DemoSet) -> None:
    store = service.store
    try:
        profile = store.save_profile(demo.profile)
        for reference in demo.references:
            service.add_reference_file(profile.id, reference)
        for case_file, truth in demo.cases.items():
            case, _ = service.import_file(case_file, profile.id)
            if truth is not None:
                store.update_case(case.id, ground_truth=truth)
    except Exception:  # one modality's demo failing leaves the others usable
        log.exception("demo profile %s could not be built", demo.profile.name)
