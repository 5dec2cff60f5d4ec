"""The verdict-extraction turn: one short follow-up when the first answer cannot be read.

Why a second turn rather than a cleverer parser: a model that wrote three paragraphs without a
clear conclusion (or ignored the requested JSON) knows what it meant; asking it, in the same
conversation, to restate its verdict as JSON is cheaper and more reliable than any reading of
prose, and the answer is the model's own statement, not our guess. The rule "never guess" holds:

* a refusal is not asked again (the model declined the task; pushing it to a boolean would
  manufacture a verdict it refused to give);
* the extraction schema offers ``"undetermined"``, so a model that could not judge can say so,
  and its answer then stays unparsed;
* the turn is stored as its own answer (status ``extraction``, with the answer it follows), so the
  audit trail shows both turns and the verdict records that it came from the second one.

Endpoints without structured output get the same question asking for one word instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from inspector.model import ParseStatus, ScoreSource
from inspector.prompt import ComposedPrompt
from inspector.vlm.answers import ParsedAnswer

EXTRACTION = "extraction"  # answer status and the "turn" recorded in its parameters
UNDETERMINED = "undetermined"

# Only "verdict" is required: a server that enforces the schema still lets the model leave out
# marks and ranges that do not apply. Strings, not a boolean, so "undetermined" is a choice.
EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["anomalous", "normal", UNDETERMINED]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "marks": {"type": "array", "items": {"type": "integer"}},
        "ranges": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "string"]}}},
        "frames": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
    "required": ["verdict"],
}


@dataclass(frozen=True)
class ExtractionRequest:
    """The question of the extraction turn, and the schema it is asked through (None: one word)."""

    question: str
    schema: dict[str, Any] | None


def needs_extraction(parsed: ParsedAnswer, prompt: ComposedPrompt, marks_judged: bool | None = None) -> bool:
    """Whether the first answer calls for the extraction turn.

    Yes when it is unreadable (but not a refusal), or when the prompt asked for marks and the
    answer is anomalous but judged none of them (selected, rejected or "no mark"; a mark only
    mentioned is not judged): a verdict without its localisation. A readable free-text answer to a
    JSON prompt is not asked again: its verdict is there, and the turn costs a request per case.
    """
    if parsed.refused:
        return False
    if not parsed.parsed:
        return True
    return bool(prompt.localization) and marks_judged is False and parsed.anomalous is True


def extraction_request(prompt: ComposedPrompt, structured: bool) -> ExtractionRequest:
    """The follow-up question: restate the verdict of the answer above, as JSON or as one word."""
    wants_marks = bool(prompt.localization)
    if structured:
        parts = [
            "State the verdict of your previous answer about the item under inspection as JSON: "
            '{"verdict": "anomalous", "normal" or "undetermined", "confidence": a number from 0 to 1}'
        ]
        if wants_marks:
            parts.append('Add "marks": the numbers of the marks that cover an anomaly (an empty list if none).')
        parts.append(
            'Add "ranges" or "frames" only where your answer named them. Use "undetermined" if your '
            "answer did not reach a verdict. Do not re-examine the images; restate what you concluded."
        )
        return ExtractionRequest(" ".join(parts), EXTRACTION_SCHEMA)
    question = (
        "Answer with one word, what your previous answer concluded about the item under inspection: "
        '"Anomalous", "Normal" or "Undetermined".'
    )
    if wants_marks:
        question += ' Then list the numbers of the marks that cover an anomaly, or "no mark".'
    return ExtractionRequest(question, None)


def extraction_messages(
    prompt_messages: list[dict[str, Any]], first_answer: str, request: ExtractionRequest
) -> list[dict[str, Any]]:
    """The conversation for the second turn: the prompt as sent, the first answer, the question."""
    return [
        *prompt_messages,
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": request.question},
    ]


_RESTATED_SOURCE = {
    ScoreSource.LOGPROB: ScoreSource.EXTRACTION_LOGPROB,
    ScoreSource.STATED_CONFIDENCE: ScoreSource.EXTRACTION_CONFIDENCE,
}


@dataclass
class Extraction:
    """The outcome of an extraction turn: its stored answer and what was read from it."""

    answer_id: int | None
    parsed: ParsedAnswer | None  # None: the request failed (`error` says why)
    raw_text: str
    error: str | None = None

    def used(self, first: ParsedAnswer) -> bool:
        """Whether the verdict comes from this turn (the first answer had none)."""
        return not first.parsed and self.parsed is not None and self.parsed.parsed

    def merged(self, first: ParsedAnswer) -> ParsedAnswer:
        """The verdict to keep: the restated one where the first answer had none, never a contradiction."""
        restated = self.parsed
        if restated is None or not restated.parsed:
            return first
        if not first.parsed:
            return replace(
                restated,
                score_source=_RESTATED_SOURCE.get(restated.score_source, restated.score_source),
                method=EXTRACTION,
            )
        if restated.anomalous != first.anomalous:  # our reading and the model's restatement disagree
            return replace(
                first, status=ParseStatus.UNPARSED, anomalous=None, score=None, score_source=ScoreSource.NONE, method=""
            )
        if first.score is None and restated.score is not None:
            return replace(
                first,
                score=restated.score,
                score_source=_RESTATED_SOURCE.get(restated.score_source, restated.score_source),
            )
        return first

    def record(self, first: ParsedAnswer) -> dict[str, Any]:
        """What the verdict's details keep about the turn (for the audit trail and the panel)."""
        restated = self.parsed
        verdict = None
        if restated is None:
            outcome = "failed"
        elif not restated.parsed:
            outcome = "undetermined"
        else:
            verdict = "anomalous" if restated.anomalous else "normal"
            if self.used(first):
                outcome = "used"
            elif restated.anomalous != first.anomalous:
                outcome = "contradicts"
            else:
                outcome = "agrees"
        return {
            "answer_id": self.answer_id,
            "verdict": verdict,
            "outcome": outcome,
            "used": self.used(first),
            "error": self.error,
        }
