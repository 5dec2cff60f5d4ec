"""The domain types shared by every layer: cases, profiles, views, verdicts, decisions.

They are plain dataclasses so that the store, the plugins, the VLM client and the Qt views
exchange the same values without depending on each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Modality(enum.StrEnum):
    """The five kinds of case the workstation inspects (plugins may add more names)."""

    IMAGE = "image"
    DICOM = "dicom"
    POINT_CLOUD = "point_cloud"
    TIME_SERIES = "time_series"
    VIDEO = "video"


class CaseStatus(enum.StrEnum):
    """What the case list shows: the operator's decision wins over the machine's verdict."""

    NOT_INSPECTED = "not_inspected"
    NORMAL = "normal"
    ANOMALOUS = "anomalous"
    UNDECIDED = "undecided"  # inspected, but the answer could not be read
    ERROR = "error"


class VerdictSource(enum.StrEnum):
    VLM = "vlm"
    OFFLINE = "offline_detector"


class ScoreSource(enum.StrEnum):
    """Where a verdict's ranking score came from, recorded with every verdict."""

    LOGPROB = "logprob"  # P(anomalous) from the verdict token's log-probabilities
    STATED_CONFIDENCE = "stated_confidence"  # the confidence the model wrote in its answer
    # the same two, read from the extraction turn (the first answer could not be read)
    EXTRACTION_LOGPROB = "extraction_logprob"
    EXTRACTION_CONFIDENCE = "extraction_confidence"
    OFFLINE_CALIBRATED = "offline_calibrated"  # offline detector, calibrated on references
    HYBRID = "hybrid"  # VLM judging the offline detector's proposals (inspector.localization.hybrid)
    NONE = "none"


class ParseStatus(enum.StrEnum):
    PARSED = "parsed"
    UNPARSED = "unparsed"  # never guessed: stored and counted
    ERROR = "error"  # the request itself failed (HTTP error, timeout, cancelled)


@dataclass
class Case:
    """One item under inspection, as stored in the project file."""

    name: str
    modality: str
    source_path: str
    source_sha256: str
    id: int | None = None
    blob_sha256: str | None = None  # set when the source bytes are embedded in the project
    metadata: dict[str, Any] = field(default_factory=dict)
    ground_truth: str | None = None  # "normal" / "anomalous" when known in advance
    profile_id: int | None = None
    status: CaseStatus = CaseStatus.NOT_INSPECTED
    error: str | None = None
    score: float | None = None
    created_at: str | None = None


@dataclass
class Profile:
    """What "normal" means for a product or an exam: the paper's prompt kinds as data."""

    name: str
    class_name: str = ""
    modality: str = Modality.IMAGE.value
    normal_standards: str = ""
    expected_defects: str = ""
    domain_preset: str = "industrial"
    settings: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class ReferenceImage:
    """A normal reference stored inside the project file (its bytes live in the blob table)."""

    profile_id: int
    name: str
    blob_sha256: str
    width: int
    height: int
    id: int | None = None
    source: str | None = None  # the file several references were taken from (a video, a series)


@dataclass
class LoadedCase:
    """What a modality reader returns: the decoded content of a case, kept in memory."""

    modality: str
    data: Any
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ViewMap:
    """Maps a view back to its case.

    `kind` names the mapping (``pixel_scale`` for images; plugins define their own, e.g. ``slice``,
    ``point_index``, ``sample_range``, ``frame_grid``) and `params` holds what the kind needs,
    JSON-serialisable so the map can be stored with the prompt. `arrays` holds what is too big for
    JSON (a depth render's pixel -> point-index image); it is kept in memory for the session only.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params}

    def view_to_case_xy(self, x: float, y: float) -> tuple[float, float]:
        """For pixel maps: a view pixel to a case pixel."""
        if self.kind != "pixel_scale":
            raise NotImplementedError(f"view_to_case_xy is not defined for {self.kind!r} maps")
        return x * self.params["scale_x"], y * self.params["scale_y"]


@dataclass
class View:
    """An RGB uint8 image a model looks at, with the map back to the case.

    `shown` says whether this is what the operator looks at in the viewer, for modalities that send
    several views of which the viewer shows one (the current slice among five DICOM slices): the
    Set-of-Mark marks and the operator's drawn regions belong to that view. None: the modality does
    not say (one view, or views the viewer shows all at once); the first view is used.
    """

    label: str
    image: np.ndarray
    view_map: ViewMap
    shown: bool | None = None


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ViewerState:
    """What the operator looks at in a modality's viewer (`CaseViewer.viewer_state`), so that the
    model is shown the same.

    `options` are the modality's own render options (DICOM: ``slice``, ``window``, ``slices``;
    video: ``frames``, ``around``; a series: ``window``): they reach that modality's renderer and
    detector as they are, and the core never reads them. `drawn_regions` are the boxes the operator
    drew, in case pixels, offered to the model as Set-of-Mark proposals: the one part the core uses.
    """

    options: dict[str, Any] = field(default_factory=dict)
    drawn_regions: tuple[Box, ...] = ()

    def __post_init__(self) -> None:  # boxes as float 4-tuples, however they were given
        boxes = tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in self.drawn_regions)
        object.__setattr__(self, "drawn_regions", boxes)

    @classmethod
    def from_render_options(cls, options: dict[str, Any] | None) -> ViewerState:
        """A viewer's render options (``"drawn_regions"`` among them, as viewers report them)."""
        rest = dict(options or {})
        drawn = rest.pop("drawn_regions", None) or []
        return cls(rest, tuple(tuple(b) for b in drawn if isinstance(b, list | tuple) and len(b) == 4))

    def render_options(self) -> dict[str, Any]:
        """The options a modality's renderer and detector get (drawn regions included, as lists)."""
        options = dict(self.options)
        if self.drawn_regions:
            options["drawn_regions"] = [list(box) for box in self.drawn_regions]
        return options

    def key(self) -> str:
        """A stable text of the state, to tell whether two states show the model the same."""
        return repr((sorted(self.options.items()), self.drawn_regions))


@dataclass
class Region:
    """A region on a case, with a score and a reason.

    The box is in case pixels (for a DICOM slice: that slice's pixels; for a video: the frame's).
    `detail` says where else the region lives, in the modality's own terms, JSON-serialisable:
    ``{"slice": 12}``, ``{"frames": [30, 61]}``, ``{"samples": [100, 250], "times": [t0, t1]}``,
    ``{"points": 5312, "point_ids": [...]}``. Regions without a box (a time range) use a zero box.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 0.0
    label: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "x0": self.x0,
            "y0": self.y0,
            "x1": self.x1,
            "y1": self.y1,
            "score": self.score,
            "label": self.label,
            "reason": self.reason,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Region:
        return cls(
            **{k: d[k] for k in ("x0", "y0", "x1", "y1")},
            score=d.get("score", 0.0),
            label=d.get("label", ""),
            reason=d.get("reason", ""),
            detail=dict(d.get("detail") or {}),
        )


@dataclass
class Verdict:
    """The machine's answer about a case, with everything needed to audit it later."""

    case_id: int
    source: VerdictSource
    anomalous: bool | None
    score: float | None
    score_source: ScoreSource
    explanation: str = ""
    parse_status: ParseStatus = ParseStatus.PARSED
    model: str = ""
    regions: list[Region] = field(default_factory=list)
    heatmap_sha256: str | None = None
    # modality-specific results too big or too structured for regions, JSON-serialisable:
    # per-frame scores of a video, per-sample scores of a series, the slice a heat map belongs to
    details: dict[str, Any] = field(default_factory=dict)
    answer_id: int | None = None
    prompt_id: int | None = None
    raw_answer: str = ""
    error: str | None = None
    id: int | None = None
    created_at: str | None = None


@dataclass
class Decision:
    """The operator's confirmation or override: the ground truth of the project."""

    case_id: int
    label: str  # "normal" or "anomalous"
    verdict_id: int | None = None
    note: str = ""
    id: int | None = None
    created_at: str | None = None
