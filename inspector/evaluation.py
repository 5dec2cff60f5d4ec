"""How good are the verdicts on this project's own cases? Metrics by profile, prompt variant and model.

Ground truth is the operator's latest decision on a case, else the label it was imported with
(labelled datasets). Every stored verdict with ground truth is one row; rows are grouped by source
(VLM / offline), profile, prompt variant (preset, version, switches, edited or not) and model, so
two prompt variants or two models run on the same cases can be compared side by side (A/B).
Unparsed answers are counted, never scored as right or wrong. Results export as CSV, JSON and a
self-contained HTML report (tables and inline SVG ROC curves; no scripts, no external files).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inspector.metrics import auroc, average_precision, confusion_metrics, roc_curve
from inspector.model import ParseStatus
from inspector.store import ProjectStore


@dataclass
class Row:
    case_id: int
    case: str
    ground_truth: bool  # anomalous (the operator's decision, else the imported label)
    predicted: bool | None  # None: unparsed
    score: float | None
    source: str
    profile: str
    variant: str
    model: str
    class_name: str


@dataclass
class GroupMetrics:
    key: dict[str, str]
    n: int
    unparsed: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    auroc: float | None
    ap: float | None
    roc: list[tuple[float, float]] = field(default_factory=list)

    @property
    def unparsed_rate(self) -> float:
        return self.unparsed / self.n if self.n else 0.0


def collect_rows(store: ProjectStore) -> list[Row]:
    """One row per stored verdict of a case with ground truth (errors excluded: no answer to judge)."""
    profiles = {p.id: p for p in store.profiles()}
    rows: list[Row] = []
    variants: dict[int, str] = {}
    for case in store.cases():
        decision = store.latest_decision(case.id)
        truth_label = decision.label if decision is not None else case.ground_truth
        if truth_label not in ("normal", "anomalous"):
            continue
        profile = profiles.get(case.profile_id)
        for verdict in store.verdicts(case.id):
            if verdict.parse_status == ParseStatus.ERROR:
                continue
            if verdict.prompt_id is not None and verdict.prompt_id not in variants:
                variants[verdict.prompt_id] = _variant(store, verdict.prompt_id)
            rows.append(
                Row(
                    case_id=case.id,
                    case=case.name,
                    ground_truth=truth_label == "anomalous",
                    predicted=verdict.anomalous if verdict.parse_status == ParseStatus.PARSED else None,
                    score=verdict.score,
                    source=str(verdict.source),
                    profile=profile.name if profile else "(none)",
                    variant=variants[verdict.prompt_id] if verdict.prompt_id is not None else "offline detector",
                    model=verdict.model,
                    class_name=profile.class_name if profile else "",
                )
            )
    return rows


def _variant(store: ProjectStore, prompt_id: int) -> str:
    """A prompt variant's name: preset and version, the switches that were off, "edited" if so."""
    record = store.prompt(prompt_id).record
    switches = record.get("switches") or {}
    off = [k for k in ("task", "class_info", "standards", "references") if switches.get(k) is False]
    name = f"{record.get('preset', '?')} {record.get('preset_version', '')}".strip()
    if off:
        name += " without " + ", ".join(off)
    if switches.get("references") is not False and switches.get("max_references") is not None:
        name += f", {switches.get('max_references')} shots"
    if switches.get("set_of_mark"):
        method = (record.get("localization") or {}).get("method") or "marks"
        name += f", Set-of-Mark ({method})"
    if record.get("edited"):
        name += ", edited text"
    return name


def metrics(rows: list[Row], key: dict[str, str] | None = None) -> GroupMetrics:
    n = len(rows)
    parsed = [r for r in rows if r.predicted is not None]
    counts = confusion_metrics([bool(r.predicted) for r in parsed], [bool(r.ground_truth) for r in parsed])
    scored = [r for r in rows if r.score is not None]
    labels = np.array([r.ground_truth for r in scored], bool)
    values = np.array([r.score for r in scored], float)
    both = labels.any() and (~labels).any()
    return GroupMetrics(
        key=key or {},
        n=n,
        unparsed=n - len(parsed),
        accuracy=counts.accuracy,
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        auroc=auroc(values, labels) if both else None,
        ap=average_precision(values, labels) if both else None,
        roc=roc_curve(values, labels) if both else [],
    )


GROUPINGS: dict[str, tuple[str, ...]] = {
    "overall": (),
    "source": ("source",),
    "profile": ("profile",),
    "class": ("class_name",),
    "prompt variant": ("source", "variant"),
    "model": ("source", "model"),
    "prompt variant × model": ("variant", "model"),
}


def evaluate(store: ProjectStore) -> dict[str, list[GroupMetrics]]:
    """Metrics for every grouping in `GROUPINGS`, groups sorted by name."""
    rows = collect_rows(store)
    out: dict[str, list[GroupMetrics]] = {}
    for name, fields in GROUPINGS.items():
        groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
        for row in rows:
            groups[tuple(str(getattr(row, f)) for f in fields)].append(row)
        out[name] = [metrics(group, dict(zip(fields, key, strict=True))) for key, group in sorted(groups.items())]
    return out


# ------------------------------------------------------------------------------------ exports

_COLUMNS = ("n", "unparsed", "accuracy", "precision", "recall", "f1", "auroc", "ap")


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def to_csv(results: dict[str, list[GroupMetrics]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["grouping", "group", *_COLUMNS])
    for grouping, groups in results.items():
        for g in groups:
            label = "; ".join(f"{k}={v}" for k, v in g.key.items()) or "all"
            writer.writerow([grouping, label, *(_fmt(getattr(g, c)) for c in _COLUMNS)])
    return buffer.getvalue()


def to_json(results: dict[str, list[GroupMetrics]]) -> str:
    return json.dumps({name: [asdict(g) for g in groups] for name, groups in results.items()}, indent=2)


def _svg_roc(groups: list[GroupMetrics], size: int = 260) -> str:
    colours = ["#1f6feb", "#f85149", "#3fb950", "#d29922", "#a371f7", "#db61a2"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect width="{size}" height="{size}" fill="#fff" stroke="#ccc"/>',
        f'<line x1="0" y1="{size}" x2="{size}" y2="0" stroke="#ddd" stroke-dasharray="4"/>',
    ]
    for i, g in enumerate(g for g in groups if g.roc):
        points = " ".join(f"{fpr * size:.1f},{(1 - tpr) * size:.1f}" for fpr, tpr in g.roc)
        parts.append(
            f'<polyline fill="none" stroke="{colours[i % len(colours)]}" stroke-width="2" points="{points}">'
            f"<title>{html.escape(', '.join(g.key.values()) or 'all')}: AUROC {_fmt(g.auroc)}</title>"
            "</polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(results: dict[str, list[GroupMetrics]], title: str = "Anomalens evaluation") -> str:
    """A self-contained report: one table and one ROC plot per grouping."""
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        "<p>Ground truth: the operator's decisions (else the labels cases were imported with). Unparsed "
        "answers are counted, not scored. AUROC/AP use the verdict scores.</p>",
    ]
    for grouping, groups in results.items():
        out.append(
            f"<h2>{html.escape(grouping)}</h2><table><tr><th>group</th>"
            + "".join(f"<th>{c}</th>" for c in _COLUMNS)
            + "</tr>"
        )
        for g in groups:
            label = html.escape("; ".join(f"{k}={v}" for k, v in g.key.items()) or "all")
            out.append(f"<tr><td>{label}</td>" + "".join(f"<td>{_fmt(getattr(g, c))}</td>" for c in _COLUMNS) + "</tr>")
        out.append("</table>")
        if any(g.roc for g in groups):
            out.append(_svg_roc(groups))
    out.append("</body></html>")
    return "\n".join(out)
