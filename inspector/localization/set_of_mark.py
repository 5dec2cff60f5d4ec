"""Set-of-Mark prompts: numbered marks on the view the model sees, and its marks back to regions.

Marks are drawn on the image *as sent* (after the prompt's downscaling), so label sizes suit what
the model actually sees and the mark -> mask map is in sent pixels, the same pixels as any box
the model returns. A chosen mark then travels the same road as a box: `mark_item` turns it into
an answer item with the mask's box and the mask cropped to it, and the modality's `locate` maps
it to a region of the case (a slice, frames, points, a sample range).

One query view is marked: the one the viewer shows (a DICOM series sent as several slices marks
the current slice), else the first. Most modalities' default renders put the case into one image
(a slice, a frame grid, a depth montage, a plot), and numbering marks across several images would
make "mark 3" ambiguous for the model.

Settings (``AppSettings.extra["localization"]``, with a profile's ``settings["localization"]`` on
top): ``method`` ("segments", "heatmap", "hybrid", "sam"), ``max_marks``, area limits, the
method's own parameters, ``vlm_weight`` for hybrid scores, ``marks_on_references``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.localization.masks import Proposal
from inspector.model import View
from inspector.prompt import downscale

#: Methods whose proposals come from the offline detector's heat map (they need references).
HEATMAP_METHODS = frozenset({"heatmap", "hybrid"})
DEFAULT_SETTINGS: dict[str, Any] = {
    "method": "segments",
    "max_marks": 12,
    "min_area_frac": 0.0005,
    "max_area_frac": 0.6,
    "merge_iou": 0.7,
    "vlm_weight": 0.7,
    "marks_on_references": False,
}


class SetOfMarkError(ValueError):
    """Marks cannot be drawn with these settings; the message is for the operator."""


@dataclass
class MarkingPlan:
    """What `compose` needs to add marks to a prompt, and what is stored with it."""

    method: str
    marked: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (query label, marked sent image)
    marked_references: list[tuple[str, np.ndarray]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # mark map: one record per mark
    offline_score: float | None = None  # the offline detector's score of the marked view (hybrid)
    vlm_weight: float = 0.7  # w of the hybrid rule (inspector.localization.hybrid)

    def record(self) -> dict[str, Any]:
        """The part stored with the prompt (besides the mark records)."""
        return {
            "method": self.method,
            "offline_score": self.offline_score,
            "vlm_weight": self.vlm_weight,
            "marked_views": [label for label, _ in self.marked],
            "marks_on_references": bool(self.marked_references),
        }


def localization_settings(app: Mapping[str, Any] | None, profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults, then the application's settings, then the profile's (nested dicts merged)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_SETTINGS.items()}
    for layer in (app or {}, profile or {}):
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif isinstance(value, dict):
                merged[key] = dict(value)
            else:
                merged[key] = value
    return merged


def plan_marks(
    views: Sequence[View],
    settings: Mapping[str, Any],
    *,
    max_side: int,
    detector: Callable[[], Any] | None = None,
    drawn_boxes: Sequence[Sequence[float]] = (),
    references: Sequence[tuple[str, np.ndarray]] = (),
    view_index: int = 0,
) -> MarkingPlan:
    """Propose regions on one view (the viewer's current one), draw the marks, build the mark map.

    `detector` returns the fitted offline detector (called only for heat-map methods).
    `drawn_boxes` are the operator's regions in that view's pixels; they become the first marks.
    `references` are the (name, image) references of the prompt, marked too when the settings
    say ``marks_on_references``; their labels read "R1", "R2", so that no reference mark can be
    mistaken for a mark on the case. `view_index` picks the view to mark (default the first).
    """
    from inspector.localization.proposals import fit_heatmap, make_proposer, operator_proposals

    if not views:
        raise SetOfMarkError("There is no view to draw marks on.")
    method = str(settings.get("method", "segments"))
    view = views[view_index if 0 <= view_index < len(views) else 0]
    small, scale = downscale(view.image, max_side)
    shape = small.shape[:2]
    heat: np.ndarray | None = None
    offline_score: float | None = None
    if method in HEATMAP_METHODS:
        if detector is None:
            raise SetOfMarkError(
                f"The {method!r} marks come from the offline detector's heat map, which needs "
                "normal reference images in the profile."
            )
        result = detector().score(view.image)
        heat = fit_heatmap(result.heatmap, shape)
        offline_score = float(result.score)
    try:
        proposer = make_proposer(dict(settings))
    except ValueError as exc:
        raise SetOfMarkError(str(exc)) from exc
    proposals: list[Proposal] = _on_foreground(proposer.propose(small, heatmap=heat), view, shape)
    drawn = [[float(v) * scale for v in box] for box in drawn_boxes if len(box) == 4]
    if drawn:  # the method's own refine settings (made from the same settings) place them first
        proposals = proposer.refine.apply(operator_proposals(drawn, shape) + proposals, shape)
    marked = render_marks_that_fit(small, proposals[: marks_for_size(shape, settings)])
    records = []
    for record, mark in zip(marked.mark_map(), marked.marks, strict=True):
        record = {**record, "view": view.label}
        if heat is not None:
            record["offline_peak"] = float(heat[mark.mask].max()) if mark.mask.any() else 0.0
        records.append(record)
    plan = MarkingPlan(
        method=method,
        marked=[(view.label, marked.image)],
        records=records,
        offline_score=offline_score,
        vlm_weight=float(settings.get("vlm_weight", DEFAULT_SETTINGS["vlm_weight"])),
    )
    if settings.get("marks_on_references") and references:
        # A reference has no heat map worth marking (it is the normal), so it gets segments.
        ref_settings = {**settings, "method": "segments"} if method in HEATMAP_METHODS else dict(settings)
        ref_proposer = make_proposer(ref_settings)
        for name, image in references:
            ref_small, _ = downscale(image, max_side)
            plan.marked_references.append(
                (name, render_marks_that_fit(ref_small, ref_proposer.propose(ref_small), label_prefix="R").image)
            )
    return plan


def marks_for_size(shape: tuple[int, int], settings: Mapping[str, Any]) -> int:
    """How many marks an image of this size carries legibly: about one per 28 x 28 px of its
    geometric-mean side (8 on a 224-px crop, the full 12 from ~340 px), never more than the
    settings' ``max_marks``. Proposals come best first (drawn regions first), so the cut drops
    the weakest."""
    limit = int(settings.get("max_marks", DEFAULT_SETTINGS["max_marks"]))
    side = float(np.sqrt(shape[0] * shape[1]))
    return max(1, min(limit, max(3, round(side / 28.0))))


def render_marks_that_fit(image: np.ndarray, proposals: list[Proposal], label_prefix: str = ""):
    """Marks for as many proposals as fit: on a small image the lowest-ranked ones are left out."""
    from inspector.localization.marks import render_marks

    kept = list(proposals)
    while True:
        try:
            return render_marks(image, kept, label_prefix=label_prefix)
        except ValueError as exc:
            if not kept:
                raise SetOfMarkError(f"Marks cannot be drawn on this view: {exc}") from exc
            kept = kept[:-1]  # proposals come best first


def _on_foreground(proposals: list[Proposal], view: View, shape: tuple[int, int]) -> list[Proposal]:
    """Keep marks on what the view shows: a depth render's empty background is not a region.

    Views whose map knows which pixels show the case (``arrays["point_index"] >= 0`` for depth
    renders) get their proposals cut to those pixels; a proposal mostly on background is dropped.
    """
    index = view.view_map.arrays.get("point_index") if view.view_map is not None else None
    if index is None:
        return proposals
    from inspector.localization.masks import resize_mask

    foreground = resize_mask(np.asarray(index) >= 0, shape)
    kept = []
    for proposal in proposals:
        inside = proposal.mask & foreground
        if proposal.source == "operator" or inside.sum() >= 0.5 * max(1, proposal.area):
            kept.append(
                Proposal(
                    inside if proposal.source != "operator" else proposal.mask,
                    proposal.score,
                    proposal.source,
                    proposal.label,
                )
            )
    return [p for p in kept if p.mask.any()]


def mark_item(record: Mapping[str, Any], reason: str = "") -> dict[str, Any]:
    """A chosen mark as an answer item for `locate`: its box and cropped mask in sent pixels."""
    return {
        "box": [float(v) for v in record["bbox"]],
        "view": str(record.get("view", "")),
        "mask": record["mask"],
        "mark": int(record["mark"]),
        "label": f"mark {int(record['mark'])}",
        "reason": reason,
    }
