"""Reading a verdict and a ranking score out of a model's answer — conservatively.

The rule of the house is "never guess": an answer we cannot read with confidence is marked
UNPARSED (anomalous=None), stored and counted, and the operator decides. So:

* JSON is tried first: a bare object, one inside a ```json fence, or one surrounded by prose.
  A verdict value we do not recognise, or objects that disagree, give UNPARSED; without a verdict
  key, an empty findings list or a named defect class still state one.
* Free text is read statement by statement (`inspector.vlm.prose`): the last firm conclusion, else
  the leading verdict word, else weighed findings; refusals are told apart from undecided answers
  (a refusal is not asked again by the extraction turn). Ranges named in an anomalous answer are
  read too (`inspector.vlm.prose_regions`). tests/answers/real_answers.json holds real answers
  this is measured against (benchmarks/answers.py), tests/answer_corpus.json our own phrasings.

The score is P(anomalous), for ranking (AUROC) and thresholds. The best source is the
log-probability of the verdict token (the value of the verdict key, the leading word, or the
verdict word of a concluding statement) as returned in an OpenAI-style ``logprobs.content`` list,
renormalised over the true/false variants found in its ``top_logprobs``; otherwise the model's
stated confidence; otherwise none. The source is always recorded.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from inspector.model import ParseStatus, ScoreSource
from inspector.vlm import lexicon
from inspector.vlm.prose import read_prose
from inspector.vlm.prose_regions import prose_ranges

# Real answers are a few KB; a model stuck in a loop can write hundreds. Reading is bounded so
# that a runaway answer cannot stall a batch: the first quarter and the last three quarters are read.
MAX_ANSWER_CHARS = 40_000
MAX_JSON_STARTS = 200  # "{" positions tried as the start of a JSON object (answers hold a few)
VERDICT_KEYS = (
    "anomalous",
    "is_anomalous",
    "verdict",
    "anomaly",
    "is_anomaly",
    "anomaly_detected",
    "defective",
    "is_defective",
    "abnormal",
    "is_abnormal",
)
_TRUE_WORDS = {"true", "yes", "anomalous", "abnormal", "defective", "anomaly", "1"}
_FALSE_WORDS = {"false", "no", "normal", "not anomalous", "non-anomalous", "not defective", "0"}
_CONFIDENCE_KEYS = ("confidence", "certainty")
_EXPLANATION_KEYS = ("reason", "explanation", "description", "rationale", "justification")
_REGION_KEYS = ("regions", "boxes", "marks", "bboxes")
# ranges on a time axis or over frames; the key is kept as the item's "unit" for the modality
_RANGE_KEYS = ("ranges", "anomalous_ranges", "time_ranges", "frame_ranges", "frames", "intervals")


@dataclass
class ParsedAnswer:
    """What was read from one answer. `method` says how: "json", "text" or "" (unparsed)."""

    status: ParseStatus
    anomalous: bool | None
    confidence: float | None
    score: float | None
    score_source: ScoreSource
    explanation: str
    # boxes ({"box": [...]}), marks ({"mark": n}) and ranges ({"range": [a, b], "unit": key})
    regions: list[dict[str, Any]] = field(default_factory=list)
    method: str = ""
    refused: bool = False  # the model declined the task (stays unparsed; not asked again)
    # the Set-of-Mark marks the answer judged (`inspector.localization.mark_answers.MarkAnswer`), read
    # once with the answer when its prompt drew marks (`read_marks`); None: not a Set-of-Mark prompt
    marks: Any = None

    @property
    def parsed(self) -> bool:
        return self.status == ParseStatus.PARSED


def parse_answer(raw_text: str, logprobs: list[Any] | dict[str, Any] | None = None) -> ParsedAnswer:
    """Read verdict, confidence, explanation, regions and score from a raw answer."""
    raw = raw_text or ""
    text = bounded(raw)
    found = _find_json_verdict(text)
    if found is not None:
        return _from_json(raw, found, logprobs)
    reading = read_prose(text)
    if reading.anomalous is None:
        return _unparsed(raw, refused=reading.refused)
    offset = _stated_word_offset(raw, reading.evidence) if reading.basis == "conclusion" else None
    score, source = _score(raw, "text", reading.anomalous, None, logprobs, offset=offset)
    regions = prose_ranges(text, reading) if reading.anomalous else []
    return ParsedAnswer(ParseStatus.PARSED, reading.anomalous, None, score, source, raw.strip(), regions, "text")


def bounded(text: str) -> str:
    """The part of an answer that is read: blanks squeezed, a runaway answer cut to its opening
    quarter and its closing three quarters (where a conclusion is) of `MAX_ANSWER_CHARS`."""
    text = lexicon.squeeze(text)
    if len(text) > MAX_ANSWER_CHARS:
        text = text[: MAX_ANSWER_CHARS // 4] + "\n" + text[-(MAX_ANSWER_CHARS * 3 // 4) :]
    return text


def _unparsed(explanation: str, refused: bool = False) -> ParsedAnswer:
    return ParsedAnswer(
        ParseStatus.UNPARSED, None, None, None, ScoreSource.NONE, explanation.strip(), [], refused=refused
    )


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


@dataclass
class _JsonVerdict:
    data: dict[str, Any] | None  # None: JSON was there, but no readable verdict (→ UNPARSED)
    key: str = ""
    synthetic: bool = False  # the verdict was inferred from findings / a defect class, not a verdict key


def _find_json_verdict(text: str) -> _JsonVerdict | None:
    """The verdict object in the text; `_JsonVerdict(None)` when JSON is there but unreadable."""
    objects = json_objects(text)
    if not objects:
        return None
    with_verdict = [(obj, key) for obj in objects if (key := _verdict_key(obj))]
    if not with_verdict:
        return _findings_verdict(objects)
    values = {_as_bool(obj[key]) for obj, key in with_verdict}
    if len(values) != 1 or None in values:
        return _JsonVerdict(None)  # several objects disagree, or the value is not a clear yes/no
    obj, key = with_verdict[0]
    return _JsonVerdict(obj, key)


_FINDINGS_KEYS = ("findings", "defects", "anomalies", "abnormalities", "detected_defects", "defect_list")
_CLASS_KEYS = ("defect_class", "defect_type", "anomaly_type", "anomaly_class", "abnormality")
_NONE_VALUES = {"", "none", "normal", "no", "n/a", "null", "no defect", "no anomaly", "good", "ok"}


def _findings_verdict(objects: list[dict[str, Any]]) -> _JsonVerdict:
    """JSON without a verdict key that still states one: ``"findings": []`` (nothing found), or a
    defect class named (``"defect_class": "Edge_Ring"``). A non-empty findings list is not read as a
    verdict: models list low-confidence observations there and conclude otherwise."""
    verdicts = set()
    for obj in objects:
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in _FINDINGS_KEYS:
            if lowered.get(key) == []:
                verdicts.add(False)
        for key in _CLASS_KEYS:
            value = lowered.get(key)
            if isinstance(value, str):
                verdicts.add(value.strip().lower().replace("_", " ") not in _NONE_VALUES)
    if len(verdicts) != 1:
        return _JsonVerdict(None)
    anomalous = verdicts.pop()
    return _JsonVerdict(
        {"anomalous": anomalous, **{k: v for o in objects for k, v in o.items()}}, "anomalous", synthetic=True
    )


def json_objects(text: str) -> list[dict[str, Any]]:
    """Top-level dicts found in the text (strict JSON, or Python-literal style as a fallback)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = 0
    tried = 0
    while (start := text.find("{", position)) != -1 and tried < MAX_JSON_STARTS:
        tried += 1
        obj: Any = None
        end = start + 1
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
            closing = _matching_brace(text, start)
            if closing is not None:
                try:
                    obj = ast.literal_eval(text[start : closing + 1])
                    end = closing + 1
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    obj = None
        if isinstance(obj, dict):
            found.append(obj)
            found.extend(_nested_dicts(obj))
            position = end
        else:
            position = start + 1
    return found


def _nested_dicts(obj: Any) -> list[dict[str, Any]]:
    """Dicts nested one level down, for answers like {"result": {"anomalous": true}}."""
    nested: list[dict[str, Any]] = []
    for value in obj.values():
        if isinstance(value, dict):
            nested.append(value)
    return nested


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    quote: str | None = None
    i = start
    end = min(len(text), start + 20000)
    while i < end:
        ch = text[i]
        i += 1
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i - 1
    return None


def _verdict_key(obj: dict[str, Any]) -> str | None:
    lowered = {str(k).lower(): k for k in obj}
    for key in VERDICT_KEYS:
        if key in lowered:
            return lowered[key]
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def _as_confidence(value: Any) -> float | None:
    """A confidence in [0, 1]; percentages (e.g. 85 or "85%") are scaled; anything else → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", value)
        if not match:
            return None
        number = float(match.group(1))
        if match.group(2):
            number /= 100.0
        value = number
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if 0.0 <= value <= 1.0:
        return float(value)
    if 1.0 < value <= 100.0:
        return float(value) / 100.0
    return None


def _regions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    raw: Any = None
    for key in _REGION_KEYS:
        if key in obj:
            raw = obj[key]
            break
    if not isinstance(raw, list):
        return []
    regions: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, dict):
            regions.append(dict(item))
        elif (
            isinstance(item, (list, tuple))
            and len(item) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)
        ):
            regions.append({"box": [float(v) for v in item]})
        elif isinstance(item, int) and not isinstance(item, bool):
            regions.append({"mark": item})
    return regions


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_item(item: Any, unit: str) -> dict[str, Any] | None:
    """One range as ``{"range": [start, end], "unit": ...}``; ends stay as given (numbers or times)."""
    extra: dict[str, Any] = {}
    if isinstance(item, dict):
        extra = {k: item[k] for k in ("reason", "label", "view") if isinstance(item.get(k), str)}
        if "range" in item and isinstance(item["range"], (list, tuple)):
            item = item["range"]
        else:
            start = next((item[k] for k in ("start", "from", "begin", "first") if k in item), None)
            end = next((item[k] for k in ("end", "to", "stop", "last") if k in item), start)
            item = [start, end]
    if _is_number(item):
        item = [item, item]
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        return None
    start, end = item
    if not all(_is_number(v) or (isinstance(v, str) and v.strip()) for v in (start, end)):
        return None
    return {"range": [start, end], "unit": unit, **extra}


def _ranges(obj: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in _RANGE_KEYS:
        raw = obj.get(key)
        if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(_is_number(v) for v in raw):
            raw = [raw]  # "frames": [30, 60] is one range, not two single frames
        if isinstance(raw, list):
            out.extend(r for item in raw if (r := _range_item(item, key)) is not None)
    return out


def _from_json(text: str, found: _JsonVerdict, logprobs: Any) -> ParsedAnswer:
    if found.data is None:
        return _unparsed(text)
    obj = found.data
    anomalous = _as_bool(obj[found.key])
    assert anomalous is not None  # checked in _find_json_verdict
    confidence = next((c for k in _CONFIDENCE_KEYS if (c := _as_confidence(obj.get(k))) is not None), None)
    explanation = next((v.strip() for k in _EXPLANATION_KEYS if isinstance(v := obj.get(k), str)), "")
    score, source = _score(text, "json", anomalous, confidence, logprobs, key=found.key)
    return ParsedAnswer(
        ParseStatus.PARSED,
        anomalous,
        confidence,
        score,
        source,
        explanation,
        _regions(obj) + _ranges(obj),
        "json-findings" if found.synthetic else "json",
    )


# ---------------------------------------------------------------------------------------------
# Score
# ---------------------------------------------------------------------------------------------

_POSITIVE_TOKENS = ("true", "yes", "anomalous", "abnormal", "defective", "anomaly")
_NEGATIVE_TOKENS = ("false", "no", "normal", "not", "non")


_STATED_WORD = re.compile(
    r"\b(not anomalous|non-anomalous|anomalous|abnormal|defective|normal|yes|no)\b", re.IGNORECASE
)


def _stated_word_offset(text: str, evidence: str) -> int | None:
    """Where the verdict word of a concluding statement ("... Verdict: anomalous") is in the raw text.

    The last occurrence of that word: a conclusion closes the answer. The token found there must
    still have the verdict's polarity (`logprob_p_anomalous` checks), else there is no logprob score.
    """
    words = _STATED_WORD.findall(evidence)
    if not words:
        return None
    found = [m.start() for m in re.finditer(r"\b" + re.escape(words[-1]) + r"\b", text, re.IGNORECASE)]
    return found[-1] if found else None


def _score(
    text: str,
    method: str,
    anomalous: bool,
    confidence: float | None,
    logprobs: Any,
    key: str = "",
    offset: int | None = None,
) -> tuple[float | None, ScoreSource]:
    p = logprob_p_anomalous(logprobs, method, anomalous, key, offset) if logprobs else None
    if p is not None:
        return p, ScoreSource.LOGPROB
    if confidence is not None:
        return (confidence if anomalous else 1.0 - confidence), ScoreSource.STATED_CONFIDENCE
    return None, ScoreSource.NONE


def _token_list(logprobs: Any) -> list[dict[str, Any]]:
    if isinstance(logprobs, dict):
        logprobs = logprobs.get("content")
    if not isinstance(logprobs, list):
        return []
    return [t for t in logprobs if isinstance(t, dict) and isinstance(t.get("token"), str)]


def _polarity(token: str) -> bool | None:
    """True/False when the token is (the start of) an anomalous/normal verdict word, else None."""
    word = token.strip().strip("\"'*`:").lower()
    if not word:
        return None
    positive = any(w.startswith(word) for w in _POSITIVE_TOKENS)
    negative = any(w.startswith(word) for w in _NEGATIVE_TOKENS)
    if positive == negative:
        return None
    return positive


def logprob_p_anomalous(
    logprobs: Any, method: str, anomalous: bool, key: str = "", offset: int | None = None
) -> float | None:
    """P(anomalous) from the verdict token's top log-probabilities, or None when it cannot be found.

    The verdict token is the value of the JSON key, the answer's leading word, or the word at
    `offset` (a concluding statement's verdict word).
    """
    tokens = _token_list(logprobs)
    if not tokens:
        return None
    joined = "".join(t["token"] for t in tokens)
    if offset is not None:
        if offset >= len(joined):
            return None
    elif method == "json":
        pattern = r"[\"']" + re.escape(key) + r"[\"']\s*:\s*[\"']?"
        match = re.search(pattern, joined)
        if not match:
            return None
        offset = match.end()
    else:
        _, offset = lexicon.leading_verdict(joined.lstrip())
        if offset < 0:
            return None
        offset += len(joined) - len(joined.lstrip())
    position = 0
    chosen: dict[str, Any] | None = None
    for token in tokens:
        end = position + len(token["token"])
        if position <= offset < end:
            chosen = token
            break
        position = end
    if chosen is None or _polarity(chosen["token"]) is not anomalous:
        return None

    candidates: dict[str, float] = {}
    for entry in [chosen, *(chosen.get("top_logprobs") or [])]:
        if isinstance(entry, dict) and isinstance(entry.get("token"), str):
            lp = entry.get("logprob")
            if isinstance(lp, (int, float)) and math.isfinite(lp):
                candidates.setdefault(entry["token"], float(lp))
    positive = sum(math.exp(lp) for t, lp in candidates.items() if _polarity(t) is True)
    negative = sum(math.exp(lp) for t, lp in candidates.items() if _polarity(t) is False)
    if positive > 0 and negative > 0:
        return positive / (positive + negative)
    # Only the chosen side is listed: the rest of the probability mass is the best estimate we have.
    p_chosen = min(1.0, math.exp(float(chosen.get("logprob", 0.0))))
    return p_chosen if anomalous else 1.0 - p_chosen
