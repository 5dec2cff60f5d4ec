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

from inspector.vlm.answers import bounded, json_objects
from inspector.vlm.lexicon import pieces

#: JSON keys that list the anomalous marks, and keys that list marks the model judged normal.
SELECTED_KEYS = (
    "marks",
    "anomalous_marks",
    "selected_marks",
    "defect_marks",
    "mark_ids",
    "anomalous_regions",
    "target_marks",
    "target_regions",
    "selected_regions",
)
REJECTED_KEYS = ("normal_marks", "rejected_marks")
_ITEM_NUMBER_KEYS = ("mark", "id", "number", "index", "label")
#: An agent's action object names the mark it acts on: {"click_element": {"index": 15}},
#: {"action": "tap", "region": 4}. Acting on a mark is choosing it.
_ACTION_NAME = re.compile(r"^(?:click|tap|select|choose|pick|press|input|type|long_press)", re.IGNORECASE)
_ACTION_TARGET_KEYS = ("mark", "index", "region", "element", "element_id", "mark_id", "target")
MAX_CLAUSE_CHARS = 600
_MAX_RANGE = 64  # "marks 2-5" is expanded; "marks 1-1000" is not a plausible answer

_UNIT = r"(?!\s*(?:px|pixels?|mm|cm|µm|um|%|°|degrees?|o'clock|x\b|stars?|minutes?|seconds?|s\b|days?))"
_NUM = r"(?<![\d.,])\d{1,3}(?![\d]|[.,]\d)" + _UNIT  # an integer, not part of a decimal or a measure
# What models call a numbered mark: "mark 2", "region #3", "area 2", "label '2'", "tag number 8",
# "element 7", "section 4", "patch 5", "the region marked as "1"", "labeled [16]", "[5]".
_MARK_NOUN = (
    r"(?:marks?|regions?|masks?|areas?|labels?|tags?|elements?|sections?|segments?|patch(?:es)?|"
    r"cells?|box(?:es)?|objects?|items?|keypoints?|spots?|zones?|numbers?|blobs?|candidates?|"
    r"proposals?|ids?)"
)
_NAMING = (
    r"(?:\s+(?:which\s+is\s+|that\s+is\s+)?(?:marked|labell?ed|numbered|tagged|indicated|denoted|identified|"
    r"highlighted|shown)(?:\s+(?:as|with|by))?(?:\s+(?:the\s+)?(?:number|label|mark|tag|digit|id))?)?"
)
_OPEN = r"[\"'“‘\[(]?\s*"
_CLOSE = r"\s*[\"'”’\])]?"
_REFERENCE = re.compile(
    r"(?:\b" + _MARK_NOUN + _NAMING + r"\s*[:=]?\s*(?:#|no\.?\s*|number\s*)?"
    r"|\b(?:marked|labell?ed|numbered|tagged)(?:\s+(?:as|with|by))?\s+(?:the\s+)?(?:number\s+|label\s+|mark\s+|"
    r"tag\s+)?|\bno\.\s*|#|(?<![\w\]])\[(?=\s*\d{1,3}\s*\]))"
    + _OPEN
    + r"(?P<first>"
    + _NUM
    + r")"
    + _CLOSE
    + r"(?P<rest>(?:\s*(?:,|and|&|or|/|-|–|—|to|through|thru|as well as|plus)\s*(?:(?:"
    + _MARK_NOUN
    + r")\s*)?#?\s*"
    + _OPEN
    + _NUM
    + _CLOSE
    + r")*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(_NUM)
_BARE_LIST = re.compile(r"^\s*#?\d{1,3}(?:\s*(?:,|;|/|&|and|-|–|to)\s*#?\d{1,3})*\s*$", re.IGNORECASE)
_RANGE_JOIN = re.compile(r"(\d{1,3})[\"'”’\])]?\s*(?:-|–|—|to|through|thru)\s*#?\s*[\"'“‘\[(]?(\d{1,3})")
_CLAUSE_SPLIT = re.compile(
    r"(?<!\b[Nn]o\.)(?<=[.!?;])\s+|\n+|\s*;\s*|"
    r",?\s+\b(?:but|whereas|while|however|although)\b\s*",
    re.IGNORECASE,
)
_NONE = re.compile(
    r"\b(?:none of the (?:marks|regions|marked regions|numbered regions)|no marks?\b(?! \d)|"
    r"no (?:marked|numbered) regions?|no region is|not any of the marks|"
    r"all (?:the )?(?:marks|regions|marked regions) (?:are|look|appear|seem) (?:normal|fine|ok|defect-free))"
    r"|^\W*none\W*$",
    re.IGNORECASE | re.MULTILINE,
)
# What an answer compares against is not a judgement of a mark: "unlike the normal reference".
_COMPARISON = re.compile(r"\bnormal (?:reference|sample|image|example|part|tile)s?(?: images?)?\b", re.IGNORECASE)
# Statements about the other marks ("the rest are normal") say nothing about this one.
_OTHERS = re.compile(
    r"\b(?:the rest|the others|other marks|all other \w+|remaining \w+|everything else|"
    r"nothing else)\b[^.;,]*",
    re.IGNORECASE,
)
_DEFECT = re.compile(
    r"\b(?:anomal(?:y|ies|ous)|abnormal\w*|defect(?:s|ive)?|crack\w*|chip\w*|scratch\w*|dent\w*|holes?|"
    r"blowholes?|break\w*|broken|fray\w*|tear\w*|torn|stain\w*|damage\w*|missing|burr\w*|contamina\w*|"
    r"corro\w*|rust\w*|deform\w*|uneven|bubbles?|pores?|porosity|spots?|lesions?|tumou?rs?|mass(?:es)?|"
    r"fractur\w*|bleed\w*|spikes?|drops?|outliers?|intruders?|foreign|affected|faulty|flaw\w*|"
    r"odd|strange|unusual|irregular\w*|out of place|stands? out|suspicious|opacit\w*|nodules?|"
    r"discolou?r\w*|smudge\w*|debris|dirt|contaminant\w*|bent|misalign\w*|fight\w*|fell|falling|fallen|"
    r"blots?|blemish\w*|streaks?|specks?|smears?|gouges?|abrasions?|opacit\w*|effusions?|hairs?|fibers?|"
    r"falls? (?:down|over))\b",
    re.IGNORECASE,
)
# Picking a mark as the answer of a task that is not about defects: "Click [10]", "select mark 3".
_SELECTION = re.compile(
    r"\b(?:click\w*|select\w*|choos\w*|chose|pick\w*|tap|type|press\w*|the answer is|"
    r"target|the correct (?:one|answer|option|mark|region)|is the one|odd one)\b|\b(?:final )?answer\s*[:：]",
    re.IGNORECASE,
)
_NEGATED_DEFECT = re.compile(
    r"\b(?:no|not|nothing|without|free of|nor|never|isn't|aren't|doesn't|don't)\s+(?:\w+\s+){0,2}?"
    + _DEFECT.pattern[2:],
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:normal|fine|ok(?:ay)?|acceptable|defect[- ]free|intact|unremarkable|background|as expected|"
    r"no (?:anomal\w*|defects?|damage|issues?|problems?|abnormalit\w*|findings?)|nothing|"
    r"(?:is|are|looks?|seems?|appears?)\s+not\s+(?:anomal\w*|defective|damaged)|"
    r"(?:isn't|aren't|doesn't|don't|does not|do not)\s+(?:\w+\s+)?(?:anomal\w*|defect\w*|show|contain|have))\b",
    re.IGNORECASE,
)
_DOUBLE_NEGATIVE = re.compile(
    r"\b(?:not|isn't|aren't|never)\s+(?:\w+\s+)?(?:normal|fine|ok(?:ay)?|acceptable)\b", re.IGNORECASE
)


@dataclass
class MarkAnswer:
    """The marks an answer selected, with the model's reason per mark."""

    selected: list[int] = field(default_factory=list)  # in the order the answer named them
    reasons: dict[int, str] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)  # marks the answer called normal
    mentioned: list[int] = field(default_factory=list)  # marks named without a judgement
    unknown: list[int] = field(default_factory=list)  # numbers named that are not on the image
    said_none: bool = False  # the answer said explicitly that no mark is anomalous
    found: bool = False  # the answer said anything about marks at all
    method: str = ""  # "json" or "text"

    @property
    def judged(self) -> bool:
        """Whether the answer judged any mark (selected, rejected, or said none); a mention is not."""
        return bool(self.selected or self.rejected or self.said_none)

    def items(self) -> list[dict[str, Any]]:
        """Answer items for `locate`: ``{"mark": n, "reason": ...}`` per selected mark."""
        return [{"mark": n, "reason": self.reasons.get(n, "")} for n in self.selected]


def parse_mark_answer(raw_text: str, valid: Collection[int]) -> MarkAnswer:
    """Read the selected marks from a JSON or free-text answer; `valid` are the numbers drawn."""
    valid_set = {int(v) for v in valid}
    raw_text = bounded(raw_text or "")  # as the verdict reader reads it
    for obj in json_objects(raw_text):
        answer = _from_json(obj, valid_set)
        if answer is not None:
            return answer
    answer = _from_text(raw_text or "", valid_set)
    return _with_conclusion(answer, raw_text or "", valid_set)


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
    for number in _acted_on(obj):
        present = True
        _select(answer, number, "", valid)
    if not present:
        return None
    answer.found = True
    answer.said_none = (
        not answer.selected
        and not answer.unknown
        and any(_empty_or_none(obj[key]) for key in SELECTED_KEYS if key in obj)
    )
    return answer


def _acted_on(obj: dict[str, Any]) -> list[int]:
    """Marks an agent's action acts on: {"action": "tap", "region": 4}, {"click_element": {"index": 15}},
    {"action": [{"input_text": {"index": 2}}, ...]}."""
    numbers: list[int] = []
    action = obj.get("action")
    if isinstance(action, str) and _ACTION_NAME.match(action.strip()):
        numbers.extend(_target_numbers(obj))
    steps = action if isinstance(action, list) else [action] if isinstance(action, dict) else []
    for step in [obj, *steps]:
        if not isinstance(step, dict):
            continue
        for key, value in step.items():
            if isinstance(value, dict) and _ACTION_NAME.match(str(key)):
                numbers.extend(_target_numbers(value))
    return list(dict.fromkeys(numbers))


def _target_numbers(step: dict[str, Any]) -> list[int]:
    for key in _ACTION_TARGET_KEYS:
        value = step.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, str) and value.strip().isdigit():
            return [int(value.strip())]
    return []


def _empty_or_none(value: Any) -> bool:
    """An explicit "no marks": [], "", "none", null."""
    if value is None or value == [] or value == "":
        return True
    return isinstance(value, str) and value.strip().lower() in ("none", "no", "n/a", "-")


def _json_items(value: Any) -> list[tuple[int, str]]:
    """(number, reason) pairs from 3, "3", "#3", "2, 5", [2, 5], [{"mark": 2, "reason": ...}]."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [(int(value), "")] if float(value).is_integer() else []
    if isinstance(value, str):
        if _BARE_LIST.match(value):
            return [(n, "") for n in _numbers_in(value)]
        referenced = [
            n for m in _REFERENCE.finditer(value) for n in _numbers_in(m.group("first") + (m.group("rest") or ""))
        ]
        if referenced:
            return [(n, "") for n in referenced]
        first = _NUMBER.search(value)  # "3 (crack)": the leading number
        return [(int(first.group()), "")] if first and first.start() <= 2 else []
    if isinstance(value, dict):
        reason = next(
            (str(value[k]) for k in ("reason", "explanation", "why", "description") if isinstance(value.get(k), str)),
            "",
        )
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


# The line that gives the answer: "Answer: region 2", "Action: Click [60]", "Final answer: 3".
_CONCLUSION_LINE = re.compile(
    r"^[\W_]*(?:final\s+)?(?:answer|action)(?:\s+\d+/\d+)?\s*[:;：]\s*(?P<body>.+)$", re.IGNORECASE | re.MULTILINE
)
# An answer that is nothing but mark references: "Region [0]", "**Mark 3**", "Marks 2 and 5."
_BARE_ACTION = re.compile(r"^\W*(?:click|tap|select|choose|pick|press)\b", re.IGNORECASE)
_FILLER = re.compile(r"^[\s\W_]*(?:(?:and|or|&)[\s\W_]*)*$", re.IGNORECASE)


def _with_conclusion(answer: MarkAnswer, text: str, valid: set[int]) -> MarkAnswer:
    """The marks that the answer's own conclusion names are its choice.

    A reasoning answer mentions many marks on its way ("[60] for 1 January, then [63] …") and
    then states its choice on an answer line ("Action: Click [60]"); a bare reply ("Region [0]")
    is its own conclusion. A mark named there without a judgement is chosen: naming it is the
    answer to "which marks"; one the conclusion calls normal stays rejected.
    """
    lines = [m.group("body") for m in _CONCLUSION_LINE.finditer(text) if _REFERENCE.search(m.group("body"))]
    if not lines and _bare(text):
        lines = [text]
    if not lines:
        return answer
    conclusion = _from_text(lines[-1], valid, unjudged="selected" if _bare(lines[-1]) else "")
    if not conclusion.selected:
        return answer
    earlier = [n for n in (*answer.selected, *answer.mentioned) if n not in conclusion.selected]
    answer.mentioned = [n for n in dict.fromkeys(earlier) if n not in conclusion.rejected]
    answer.rejected = list(dict.fromkeys([*answer.rejected, *conclusion.rejected]))
    answer.rejected = [n for n in answer.rejected if n not in conclusion.selected]
    answer.reasons = {n: answer.reasons.get(n) or conclusion.reasons.get(n, "") for n in conclusion.selected}
    answer.selected = conclusion.selected
    answer.said_none = False
    answer.found = True
    return answer


def _bare(text: str) -> bool:
    """Nothing but mark references, perhaps after an action word: "Region [0]", "Click [60]"."""
    text = text.strip()
    if not text or len(text) > 80:
        return False
    rest = _REFERENCE.sub(" ", text)
    return rest != text and bool(_FILLER.match(_BARE_ACTION.sub(" ", rest)))


def _from_text(text: str, valid: set[int], unjudged: str = "") -> MarkAnswer:
    """Clause by clause; each mark judged on its own words, the last statement about a mark wins.

    A mark is selected when its words (or, when they judge nothing, the words of its clause before
    it: "the crack is in region 3") name an anomaly or pick it ("Click [10]"); rejected when they
    call it normal; otherwise only mentioned — never selected on a guess ("Mark 3 is the bolt
    head"): an answer that judges no mark gets the extraction turn, which asks for them.
    """
    answer = MarkAnswer(method="text")
    text = _COMPARISON.sub("reference", text)
    # a clause's marks are judged on the words up to the next mark: long clauses are cut so that a
    # degenerate answer naming thousands of marks stays linear
    clauses = (piece for c in _CLAUSE_SPLIT.split(text) for piece in pieces(c.strip(), MAX_CLAUSE_CHARS))
    for clause in clauses:
        if not clause:
            continue
        matches = list(_REFERENCE.finditer(clause))
        if not matches:
            if _NONE.search(clause):
                answer.found = True
                answer.said_none = True
            continue
        answer.found = True
        for k, match in enumerate(matches):
            # A mark's own words: from its reference to the next one (a list shares its words).
            stop = matches[k + 1].start() if k + 1 < len(matches) else len(clause)
            own = clause[match.start() : stop]
            if (
                k + 1 < len(matches)
                and not _DEFECT.search(own)
                and not _NEGATIVE.search(own[match.end() - match.start() :])
            ):
                own = clause[match.start() :]  # "Mark 1 and mark 2 are normal": they share the predicate
            before = clause[matches[k - 1].end() if k else 0 : match.start()]
            verdict = _judgement(own[match.end() - match.start() :]) or _judgement(before) or unjudged
            numbers = _numbers_in(match.group("first") + (match.group("rest") or ""))
            reason = _reason(clause, match)
            for number in numbers:
                if number not in valid:
                    if number not in answer.unknown:
                        answer.unknown.append(number)
                elif verdict == "normal":
                    if number in answer.selected:
                        answer.selected.remove(number)
                        answer.reasons.pop(number, None)
                    if number not in answer.rejected:
                        answer.rejected.append(number)
                elif verdict == "selected":
                    _select(answer, number, reason, valid)
                elif number not in answer.mentioned:
                    answer.mentioned.append(number)
    answer.mentioned = [n for n in answer.mentioned if n not in answer.selected and n not in answer.rejected]
    if answer.selected:
        answer.said_none = False
    return answer


def _judgement(words: str) -> str:
    """ "selected", "normal" or "" for words that say nothing about the mark."""
    if not words.strip():
        return ""
    if _judged_normal(words):
        return "normal"
    others_removed = _OTHERS.sub("", words)
    negated = [m.span() for m in _NEGATED_DEFECT.finditer(others_removed)]
    if any(not any(a <= d.start() < b for a, b in negated) for d in _DEFECT.finditer(others_removed)):
        return "selected"
    if _SELECTION.search(words):
        return "selected"
    return ""


def _judged_normal(words: str) -> bool:
    """True when the words call their mark normal: a defect named (not negated) wins over "normal"."""
    words = _OTHERS.sub("", words)
    negated = [m.span() for m in _NEGATED_DEFECT.finditer(words)]
    if any(not any(a <= d.start() < b for a, b in negated) for d in _DEFECT.finditer(words)):
        return False  # "has a crack", even if "normal" appears too
    if _DOUBLE_NEGATIVE.search(words):
        return False  # "is not normal"
    return bool(_NEGATIVE.search(words) or negated)


def _reason(clause: str, match: re.Match[str]) -> str:
    """The words after "Mark 4:" / "Mark 4 -", else the whole clause."""
    tail = clause[match.end() :]
    stripped = tail.lstrip()
    if stripped[:1] in (":", "-", "–", "—", ")", "]"):
        return stripped[1:].strip().rstrip(".") or clause.strip()
    return clause.strip().rstrip(".")
