"""What left the workstation, per project: every request sent to a model, to which host, with what.

Built from the stored answers (each request is stored as an answer, failed and cancelled ones
included; one replayed from the response cache sent nothing and is not listed) and the stored
prompts (texts and images by hash, exactly as sent). A clinician or an auditor can see which
images and how much text went to which host, and when, without the key, which is never stored.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from urllib.parse import urlsplit

from inspector.store import ProjectStore
from inspector.store.records import AnswerRecord, PromptRecord


@dataclass(frozen=True)
class EgressRecord:
    """One request that left the workstation."""

    sent_at: str
    host: str
    endpoint: str
    model: str
    case_id: int
    case_name: str
    kind: str  # "inspection", "extraction turn" or "follow-up question"
    status: str  # how the request ended: ok, extraction, error, cancelled
    prompt_sha256: str
    text_chars: int  # the prompt's system and user text, plus a follow-up's question (a follow-up
    # also sends the conversation so far: the model's earlier answers, which are stored as answers)
    images: tuple[str, ...]  # "role:sha256" of every image sent, in order


def _kind(answer: AnswerRecord) -> str:
    if "followup_of" in answer.params:
        return "follow-up question"
    if answer.params.get("turn") == "extraction" or answer.status == "extraction":
        return "extraction turn"
    return "inspection"


def egress_log(store: ProjectStore) -> list[EgressRecord]:
    """Every request sent from this project, oldest first."""
    names = {c.id: c.name for c in store.cases()}
    prompts: dict[int, PromptRecord] = {}
    records = []
    for answer in store.all_answers():
        if answer.status == "cached":  # taken from the project's response cache: nothing was sent
            continue
        prompt = None
        if answer.prompt_id is not None:
            if answer.prompt_id not in prompts:
                prompts[answer.prompt_id] = store.prompt(answer.prompt_id)
            prompt = prompts[answer.prompt_id]
        question = str(answer.params.get("question", ""))
        records.append(
            EgressRecord(
                sent_at=answer.created_at,
                host=(urlsplit(answer.endpoint).hostname or answer.endpoint or "").lower(),
                endpoint=answer.endpoint,
                model=answer.model,
                case_id=answer.case_id,
                case_name=names.get(answer.case_id, ""),
                kind=_kind(answer),
                status=answer.status,
                prompt_sha256=prompt.sha256 if prompt else "",
                text_chars=(len(prompt.system_text) + len(prompt.user_text) if prompt else 0) + len(question),
                images=tuple(f"{i.role}:{i.blob_sha256}" for i in prompt.images) if prompt else (),
            )
        )
    return records


def to_csv(records: list[EgressRecord]) -> str:
    """The log as CSV (one row per request; images separated by spaces)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "sent_at",
            "host",
            "endpoint",
            "model",
            "case_id",
            "case",
            "kind",
            "status",
            "prompt_sha256",
            "text_chars",
            "images",
        ]
    )
    for r in records:
        writer.writerow(
            [
                r.sent_at,
                r.host,
                r.endpoint,
                r.model,
                r.case_id,
                r.case_name,
                r.kind,
                r.status,
                r.prompt_sha256,
                r.text_chars,
                " ".join(r.images),
            ]
        )
    return buffer.getvalue()
