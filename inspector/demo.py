"""The demo project shipped with the application: one profile, normal references, six cases.

Built from `resources/demo/` (CC0 texture crops; see its ATTRIBUTION.md) so the workstation can be
tried with no data of one's own, no endpoint and no network.
"""

from __future__ import annotations

from pathlib import Path

from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.paths import resources_dir
from inspector.plugins import PluginRegistry
from inspector.store import ProjectStore

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


def build_demo_project(path: Path, registry: PluginRegistry) -> ProjectStore:
    """Create (or reopen, if it already has the demo profile) the demo project at `path`."""
    store = ProjectStore(path)
    if any(p.name == DEMO_PROFILE.name for p in store.profiles()):
        return store
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(**{k: v for k, v in vars(DEMO_PROFILE).items() if k != "id"}))
    for reference in sorted((demo_dir() / "references").glob("*.png")):
        service.add_reference_file(profile.id, reference)
    for case_file in sorted((demo_dir() / "cases").glob("*.png")):
        case, _ = service.import_file(case_file, profile.id)
        truth = "normal" if case_file.stem.endswith("normal") else "anomalous"
        store.update_case(case.id, ground_truth=truth)
    return store
