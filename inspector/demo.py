"""The demo project shipped with the application: a profile per modality, references, cases.

Built from `resources/demo/` (CC0 texture crops; see its ATTRIBUTION.md) so the workstation can be
tried with no data of one's own, no endpoint and no network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.paths import resources_dir
from inspector.plugins import PluginRegistry
from inspector.store import ProjectStore

log = logging.getLogger(__name__)

DEMO_PROFILE = Profile(
    name="Brick panel (demo)",
    class_name="brick wall panel",
    modality="image",
    domain_preset="industrial",
    normal_standards=(
        "Rows of rectangular bricks of even grey tone separated by straight, light mortar joints. "
        "Joints are continuous, about the same width everywhere. Brick faces show fine, uniform "
        "grain only."
    ),
    expected_defects="crack across a brick\nblowhole or pit (dark round spot)\nbright stain or deposit",
)


def demo_dir() -> Path:
    return resources_dir() / "demo"


def build_demo_project(path: Path, registry: PluginRegistry, with_other_modalities: bool = True) -> ProjectStore:
    """Create (or complete, if profiles are missing) the demo project at `path`.

    The brick images come from `resources/demo`; the other modalities' demo cases are generated
    into a folder beside the project (see `inspector.demo_modalities`). A modality whose plugin is
    missing or fails is skipped with a log line: the rest of the demo still opens.
    """
    store = ProjectStore(path)
    existing = {p.name for p in store.profiles()}
    service = InspectionService(store, registry)
    try:
        if DEMO_PROFILE.name not in existing:
            profile = store.save_profile(Profile(**{k: v for k, v in vars(DEMO_PROFILE).items() if k != "id"}))
            for reference in sorted((demo_dir() / "references").glob("*.png")):
                service.add_reference_file(profile.id, reference)
            for case_file in sorted((demo_dir() / "cases").glob("*.png")):
                case, _ = service.import_file(case_file, profile.id)
                truth = "normal" if case_file.stem.endswith("normal") else "anomalous"
                store.update_case(case.id, ground_truth=truth)
        if with_other_modalities:
            _add_other_modalities(service, path.parent / f"{path.stem}-files", existing)
    finally:
        service.close()
    return store


def _add_other_modalities(service: InspectionService, folder: Path, existing: set[str]) -> None:
    from inspector.demo_modalities import demo_sets

    store = service.store
    try:
        sets = demo_sets(folder)
    except Exception:  # a demo generator problem must not stop the workstation
        log.exception("the demo cases of the other modalities could not be generated")
        return
    for demo in sets:
        if demo.profile.name in existing or demo.profile.modality not in service.registry.modalities:
            continue
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
