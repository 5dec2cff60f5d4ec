"""Which numbered marks did the model call anomalous? Reading Set-of-Mark answers.

The prompt asks for ``{"marks": [{"mark": 2, "reason": "..."}]}``, and structured output usually
delivers that. Models without it answer in prose: "Marks 2 and 5 show cracks", "Region #3",
"Mark 1 is normal; mark 4 has a chip", "None of the marks". The reader follows the house rule of
the verdict parser: never guess. A number that is not on the image is reported, not used; a
clause that calls its marks normal rejects them; a reply that names no mark at all selects none
(and says so through `found`), so the caller can tell "the model rejected every mark" from "the
model did not talk about marks".
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from inspector.vlm.answers import json_objects

#: JSON keys that list the anomalous marks, and keys that list marks the model judged normal.
SELECTED_KEYS = ("marks", "anomalous_marks", "selected_marks", "defect_marks", "mark_ids", "anomalous_regions")
REJECTED_KEYS = ("normal_marks", "rejected_marks")
_ITEM_NUMBER_KEYS = ("mark", "id", "number", "index", "label")
_MAX_RANGE = 64  # "marks 2-5" is expanded; "marks 1-1000" is not a plausible answer

_REFERENCE = re.compile(
    r"(?:\b(?:marks?|regions?|labels?|masks?|segments?|areas?|numbers?|candidates?|nos?\.?)\s*"
    r"(?:#|no\.?\s*|number\s*)?|#)"
    r"(?P<first>\d{1,3})"
    r"(?P<rest>(?:\s*(?:,|and|&|or|/|-|–|—|to|as well as|plus)\s*(?:(?:marks?|regions?|#)\s*)?#?\s*\d{1,3}\b)*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d{1,3}")
_RANGE_JOIN = re.compile(r"(\d{1,3})\s*(?:-|–|—|to)\s*#?\s*(\d{1,3})")
_CLAUSE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+|\s*;\s*|,?\s+\b(?:but|whereas|while|however|although)\b\s*",
                           re.IGNORECASE)
_NONE = re.compile(
    r"\b(?:none of the (?:marks|regions|marked regions|numbered regions)|no marks?\b(?! \d)|"
    r"no (?:marked|numbered) regions?|no region is|not any of the marks|"
    r"all (?:the )?(?:marks|regions|marked regions) (?:are|look|appear|seem) (?:normal|fine|ok|defect-free))"
    r"|^\W*none\W*$",
    re.IGNORECASE | re.MULTILINE,
)
_NEGATIVE = re.compile(
    r"\b(?:normal|fine|ok(?:ay)?|acceptable|defect[- ]free|intact|unremarkable|background|as expected|"
    r"no (?:anomal\w*|defects?|damage|issues?|problems?|abnormalit\w*|findings?)|nothing|"
    r"(?:is|are|looks?|seems?|appears?)\s+not\s+(?:anomal\w*|defective|damaged)|"
    r"(?:isn't|aren't|doesn't|don't|does not|do not)\s+(?:\w+\s+)?(?:anomal\w*|defect\w*|show|contain|have))\b",
    re.IGNORECASE,
)
_DOUBLE_NEGATIVE = re.compile(r"\b(?:not|isn't|aren't|never)\s+(?:\w+\s+)?(?:normal|fine|ok(?:ay)?|acceptable)\b|"
                              r"\babnormal", re.IGNORECASE)


@dataclass
class MarkAnswer:
    """The marks an answer selected, with the model's reason per mark."""

    selected: list[int] = field(default_factory=list)  # in the order the answer named them
    reasons: dict[int, str] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)  # marks the answer called normal
    unknown: list[int] = field(default_factory=list)  # numbers named that are not on the image
    said_none: bool = False  # the answer said explicitly that no mark is anomalous
    found: bool = False  # the answer said anything about marks at all
    method: str = ""  # "json" or "text"

    def items(self) -> list[dict[str, Any]]:
        """Answer items for `locate`: ``{"mark": n, "reason": ...}`` per selected mark."""
        return [{"mark": n, "reason": self.reasons.get(n, "")} for n in self.selected]


def parse_mark_answer(raw_text: str, valid: Collection[int]) -> MarkAnswer:
    """Read the selected marks from a JSON or free-text answer; `valid` are the numbers drawn."""
    valid_set = {int(v) for v in valid}
    for obj in json_objects(raw_text or ""):
        answer = _from_json(obj, valid_set)
        if answer is not None:
            return answer
    return _from_text(raw_text or "", valid_set)


# ------------------------------------------------------------------------------------------ JSON


def _from_json(obj: dict[str, Any], valid: set[int]) -> MarkAnswer | None:
    answer = MarkAnswer(method="json")
    present = False
    for key in SELECTED_KEYS:
        if key in obj:
            present = True
            for number, reason in _json_items(obj[key]):
                _select(answer, number, reason, valid)
    for key in REJECTED_KEYS:
        if key in obj:
            present = True
            for number, _ in _json_items(obj[key]):
                if number in valid and number not in answer.selected and number not in answer.rejected:
                    answer.rejected.append(number)
    regions = obj.get("regions")
    if isinstance(regions, list):  # {"regions": [{"mark": 3, "reason": ...}]}
        for item in regions:
            if isinstance(item, dict) and any(k in item for k in ("mark", "marks")):
                present = True
                for number, reason in _json_items([item]):
                    _select(answer, number, reason, valid)
    if not present:
        return None
    answer.found = True
    answer.said_none = not answer.selected and not answer.unknown
    return answer


def _json_items(value: Any) -> list[tuple[int, str]]:
    """(number, reason) pairs from 3, "3", "#3", "2, 5", [2, 5], [{"mark": 2, "reason": ...}]."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [(int(value), "")] if float(value).is_integer() else []
    if isinstance(value, str):
        return [(n, "") for n in _numbers_in(value)]
    if isinstance(value, dict):
        reason = next((str(value[k]) for k in ("reason", "explanation", "why", "description")
                       if isinstance(value.get(k), str)), "")
        for key in (*_ITEM_NUMBER_KEYS, "marks"):
            if key in value:
                return [(n, reason or r) for n, r in _json_items(value[key])]
        return []
    if isinstance(value, (list, tuple)):
        out: list[tuple[int, str]] = []
        for item in value:
            out.extend(_json_items(item))
        return out
    return []


def _numbers_in(text: str) -> list[int]:
    numbers: list[int] = []
    spans: list[tuple[int, int]] = []
    for match in _RANGE_JOIN.finditer(text):
        a, b = int(match.group(1)), int(match.group(2))
        if a <= b and b - a <= _MAX_RANGE:
            numbers.extend(range(a, b + 1))
            spans.append(match.span())
    for match in _NUMBER.finditer(text):
        if not any(s <= match.start() < e for s, e in spans):
            numbers.append(int(match.group()))
    return numbers


def _select(answer: MarkAnswer, number: int, reason: str, valid: set[int]) -> None:
    if number not in valid:
        if number not in answer.unknown:
            answer.unknown.append(number)
        return
    if number in answer.rejected:
        answer.rejected.remove(number)
    if number not in answer.selected:
        answer.selected.append(number)
    if reason and not answer.reasons.get(number):
        answer.reasons[number] = reason.strip()


# ------------------------------------------------------------------------------------------ text


def _from_text(text: str, valid: set[int]) -> MarkAnswer:
    answer = MarkAnswer(method="text")
    for clause in (c.strip() for c in _CLAUSE_SPLIT.split(text)):
        if not clause:
            continue
        matches = list(_REFERENCE.finditer(clause))
        if not matches:
            if _NONE.search(clause):
                answer.found = True
                answer.said_none = True
            continue
        answer.found = True
        negative = bool(_NEGATIVE.search(clause)) and not _DOUBLE_NEGATIVE.search(clause)
        for match in matches:
            numbers = _numbers_in(match.group("first") + (match.group("rest") or ""))
            reason = _reason(clause, match)
            for number in numbers:
                if negative:
                    if number in valid and number not in answer.selected and number not in answer.rejected:
                        answer.rejected.append(number)
                    elif number not in valid and number not in answer.unknown:
                        answer.unknown.append(number)
                else:
                    _select(answer, number, reason, valid)
    if answer.selected:
        answer.said_none = False
    return answer


def _reason(clause: str, match: re.Match[str]) -> str:
    """The words after "Mark 4:" / "Mark 4 -", else the whole clause."""
    tail = clause[match.end():]
    stripped = tail.lstrip()
    if stripped[:1] in (":", "-", "–", "—", ")", "]"):
        return stripped[1:].strip().rstrip(".") or clause.strip()
    return clause.strip().rstrip(".")
