"""Operator decisions become material for the profile: normal cases as references, defects as words.

Every such change is recorded in the profile's change log (``settings["changes"]``: time and what
changed), so the window can say of any verdict whether it was produced before or after a change,
and the evaluation can compare answers from both sides. A change never rewrites earlier verdicts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspector.model import Case, Profile, Verdict

if TYPE_CHECKING:
    from inspector.inspection import InspectionService


class FeedbackError(Exception):
    """The change cannot be made; the message is for the operator."""


@dataclass
class ProfileChange:
    at: str  # ISO time, comparable with verdicts' created_at
    what: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def changes(profile: Profile) -> list[ProfileChange]:
    log = profile.settings.get("changes") if isinstance(profile.settings, dict) else None
    return [ProfileChange(str(c.get("at", "")), str(c.get("what", ""))) for c in log or [] if isinstance(c, dict)]


def _record(service: InspectionService, profile: Profile, what: str) -> ProfileChange:
    change = ProfileChange(_now(), what)
    settings = dict(profile.settings) if isinstance(profile.settings, dict) else {}
    settings["changes"] = [*settings.get("changes", []), {"at": change.at, "what": change.what}]
    profile.settings = settings
    service.store.save_profile(profile)
    return change


def promote_to_reference(service: InspectionService, case: Case, profile: Profile) -> int:
    """Add a case the operator confirmed as normal to the profile's references; returns how many
    reference images it gave (a video gives several frames, a cloud its depth-render montage)."""
    assert case.id is not None and profile.id is not None
    decision = service.store.latest_decision(case.id)
    if decision is None or decision.label != "normal":
        raise FeedbackError(
            f"{case.name}: only a case the operator has confirmed as normal (N) can become a normal reference."
        )
    plugin = service.registry.modality(case.modality)
    loaded = service.load_case(case)
    if plugin.reference_images is not None:
        images = plugin.reference_images(loaded)
    elif plugin.offline_input is not None:
        images = [(case.name, plugin.offline_input(loaded))]
    else:
        raise FeedbackError(f"{plugin.title} cases cannot be used as references.")
    for name, rgb in images:
        service.add_reference_array(profile.id, name, rgb, source=f"case {case.id}")
    _record(service, profile, f"normal reference added from case {case.name}")
    return len(images)


def add_expected_defect(
    service: InspectionService, profile: Profile, description: str, case: Case | None = None
) -> None:
    """Add a confirmed defect description (one line) to the profile's expected defects."""
    text = " ".join(description.split()).strip().rstrip(".")
    if not text:
        raise FeedbackError("Describe the defect first.")
    existing = [line.strip().lower() for line in profile.expected_defects.splitlines()]
    if text.lower() in existing:
        raise FeedbackError(f"{text!r} is already among the expected defects.")
    profile.expected_defects = "\n".join(filter(None, [profile.expected_defects.strip(), text]))
    source = f" (from case {case.name})" if case is not None else ""
    _record(service, profile, f"expected defect added: {text}{source}")


def changes_since(profile: Profile, verdict: Verdict) -> list[ProfileChange]:
    """Profile changes made after this verdict was produced (empty: it reflects the current profile)."""
    if not verdict.created_at:
        return []
    return [c for c in changes(profile) if c.at > verdict.created_at]
