"""Follow-up questions on a VLM verdict: the same images, the conversation so far, stored with the case.

A follow-up is a request like any other, so each turn is stored as an answer row (status
``followup``, or ``error`` when the request failed) with the question and the verdict it follows up
in its parameters: endpoint, model, tokens and latency are audited the same way, and the
conversation is rebuilt from the project file after a restart. The model gets the original prompt
exactly as stored (system text, user text, the images), its own first answer, the earlier turns,
then the new question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.model import Case, Verdict, VerdictSource, ViewMap
from inspector.prompt import ComposedPrompt, PromptImage, PromptSwitches
from inspector.settings import EndpointSettings, resolve_api_key

if TYPE_CHECKING:
    from inspector.store import ProjectStore

FOLLOWUP = "followup"
MAX_QUESTION_CHARS = 4000


class ChatError(Exception):
    """A follow-up cannot be asked; the message is for the operator."""


@dataclass
class ChatTurn:
    question: str
    answer: str
    model: str
    created_at: str
    error: str | None = None


def conversation(store: ProjectStore, verdict: Verdict) -> list[ChatTurn]:
    """The follow-up turns on this verdict, oldest first (failed requests included, with the reason)."""
    turns = []
    for row in store.answers(verdict.case_id):
        if row.params.get("followup_of") != verdict.id:
            continue
        turns.append(
            ChatTurn(
                question=str(row.params.get("question", "")),
                answer=row.raw_text,
                model=row.model,
                created_at=row.created_at,
                error=row.error if row.status == "error" else None,
            )
        )
    return turns


def stored_prompt(store: ProjectStore, prompt_id: int) -> ComposedPrompt:
    """The prompt exactly as it was sent, rebuilt from the project file (text, images, captions)."""
    row = store.prompt(prompt_id)
    record = row.record
    details = record.get("images") or []
    images = []
    for position, image in enumerate(row.images):
        info: dict[str, Any] = details[position] if position < len(details) else {}
        images.append(
            PromptImage(
                role=image.role,
                label=image.label,
                png=store.get_blob(image.blob_sha256),
                sha256=image.blob_sha256,
                caption=str(info.get("caption", "")),
                width=int(info.get("width", 0)),
                height=int(info.get("height", 0)),
                scale=float(info.get("scale", 1.0)),
            )
        )
    return ComposedPrompt(
        system=row.system_text,
        text=row.user_text,
        images=images,
        switches=PromptSwitches.from_dict(record.get("switches") or {}),
        preset=str(record.get("preset", "")),
        preset_version=str(record.get("preset_version", "")),
        edited=bool(record.get("edited")),
        sha256=row.sha256,
        view_maps={
            str(label): ViewMap(str(vm.get("kind", "")), dict(vm.get("params") or {}))
            for label, vm in (record.get("view_maps") or {}).items()
            if isinstance(vm, dict)
        },
    )


def _verdict_turns(store: ProjectStore, verdict: Verdict) -> list[dict[str, Any]]:
    """The model's side of the conversation so far: its answer and, where one was asked, the
    extraction turn (question and restated verdict), as stored, not the verdict's joined record."""
    rows = {row.id: row for row in store.answers(verdict.case_id)}
    first = rows.get(verdict.answer_id) if verdict.answer_id is not None else None
    turns: list[dict[str, Any]] = [{"role": "assistant", "content": first.raw_text if first else verdict.raw_answer}]
    extraction = (verdict.details or {}).get("extraction") or {}
    extraction_id = extraction.get("answer_id") if isinstance(extraction, dict) else None
    row = rows.get(extraction_id) if isinstance(extraction_id, int) else None
    if row is not None and row.raw_text:
        question = str(row.params.get("question", ""))
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": row.raw_text}]
    return turns


async def ask_followup(
    store: ProjectStore, case: Case, verdict: Verdict, question: str, endpoint: EndpointSettings, client=None
) -> ChatTurn:
    """Ask one follow-up question about a VLM verdict and store the turn (also when it fails)."""
    from inspector.vlm.client import VlmClient, VlmError

    question = question.strip()
    if not question:
        raise ChatError("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ChatError(f"The question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS}).")
    if verdict.source != VerdictSource.VLM or verdict.prompt_id is None or verdict.id is None:
        raise ChatError(
            "Follow-up questions continue a conversation with the model: inspect the case with the "
            "VLM first (this verdict comes from the offline detector)."
        )
    if not endpoint.configured:
        raise ChatError("Set a VLM endpoint first (Settings ▸ VLM endpoint).")
    assert case.id is not None
    prompt = stored_prompt(store, verdict.prompt_id)
    own_client = client is None
    if client is None:
        client = VlmClient(endpoint, resolve_api_key(endpoint))
    messages = [*client.build_messages(prompt), *_verdict_turns(store, verdict)]
    for turn in conversation(store, verdict):
        if turn.error is None:
            messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
    messages.append({"role": "user", "content": question})
    params = {
        "followup_of": verdict.id,
        "question": question,
        "temperature": endpoint.temperature,
        "max_tokens": endpoint.max_tokens,
    }
    try:
        answer = await client.chat(messages)
    except VlmError as exc:
        store.save_answer(
            case.id,
            verdict.prompt_id,
            endpoint=endpoint.base_url,
            model=endpoint.model,
            params=params,
            raw_text="",
            response=None,
            status="error",
            error=exc.user_message,
        )
        raise ChatError(exc.user_message) from exc
    finally:
        if own_client:
            await client.aclose()
    store.save_answer(
        case.id,
        verdict.prompt_id,
        endpoint=endpoint.base_url,
        model=answer.model or endpoint.model,
        params=params,
        raw_text=answer.raw_text,
        response=answer.response,
        status=FOLLOWUP,
        latency_s=answer.latency_s,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
    )
    return conversation(store, verdict)[-1]
