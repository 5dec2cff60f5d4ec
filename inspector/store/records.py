"""Typed rows of the project file: what the store returns for prompts, answers and batches.

The store used to hand out plain dicts keyed by column names (``row["raw_text"]``,
``batch["endpoint"]``), so a typo or a renamed column failed at run time, far from the store.
These records name every column once, with its type; JSON columns arrive decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


@dataclass(frozen=True)
class PromptImageRecord:
    role: str  # "reference", "query", "marked", "marked_reference"
    label: str
    blob_sha256: str


@dataclass(frozen=True)
class PromptRecord:
    """A stored prompt: the texts sent, its full record (switches, preset, marks, view maps) and its
    images in order (their bytes are blobs)."""

    id: int
    sha256: str
    system_text: str
    user_text: str
    record: dict[str, Any]
    created_at: str
    images: list[PromptImageRecord] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any], images: list[dict[str, Any]]) -> PromptRecord:
        return cls(
            id=int(row["id"]),
            sha256=row["sha256"],
            system_text=row["system_text"] or "",
            user_text=row["user_text"] or "",
            record=_json(row.get("record_json"), {}),
            created_at=row.get("created_at") or "",
            images=[PromptImageRecord(i["role"], i["label"], i["blob_sha256"]) for i in images],
        )


@dataclass(frozen=True)
class AnswerRecord:
    """One stored answer of a model: a first answer ("ok"), an extraction turn ("extraction"), one
    taken from the response cache ("cached"), or a failed or abandoned request ("error")."""

    id: int
    case_id: int
    prompt_id: int | None
    endpoint: str
    model: str
    params: dict[str, Any]
    raw_text: str
    response: dict[str, Any] | None
    status: str
    error: str | None
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AnswerRecord:
        return cls(
            id=int(row["id"]),
            case_id=int(row["case_id"]),
            prompt_id=row.get("prompt_id"),
            endpoint=row.get("endpoint") or "",
            model=row.get("model") or "",
            params=_json(row.get("params_json"), {}),
            raw_text=row.get("raw_text") or "",
            response=_json(row.get("response_json"), None),
            status=row.get("status") or "",
            error=row.get("error"),
            latency_s=row.get("latency_s"),
            prompt_tokens=row.get("prompt_tokens"),
            completion_tokens=row.get("completion_tokens"),
            created_at=row.get("created_at") or "",
        )


@dataclass(frozen=True)
class BatchRecord:
    """A stored batch: the endpoint settings and limits (prompt variant included) it was started with."""

    id: int
    created_at: str
    updated_at: str
    status: str  # pending | running | done | cancelled | stopped
    endpoint: dict[str, Any]
    limits: dict[str, Any]
    message: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BatchRecord:
        return cls(
            id=int(row["id"]),
            created_at=row.get("created_at") or "",
            updated_at=row.get("updated_at") or "",
            status=row.get("status") or "",
            endpoint=_json(row.get("endpoint_json"), {}),
            limits=_json(row.get("limits_json"), {}),
            message=row.get("message"),
        )


@dataclass(frozen=True)
class BatchItemRecord:
    """One case of a batch and how far it got."""

    batch_id: int
    position: int
    case_id: int
    state: str  # pending | done | failed
    error: str | None
    verdict_id: int | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    updated_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BatchItemRecord:
        return cls(
            batch_id=int(row["batch_id"]),
            position=int(row["position"]),
            case_id=int(row["case_id"]),
            state=row.get("state") or "",
            error=row.get("error"),
            verdict_id=row.get("verdict_id"),
            model=row.get("model"),
            prompt_tokens=row.get("prompt_tokens"),
            completion_tokens=row.get("completion_tokens"),
            attempts=int(row.get("attempts") or 0),
            updated_at=row.get("updated_at") or "",
        )
