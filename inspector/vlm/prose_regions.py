"""Where a free-text answer says the anomaly is: frame ranges, sample/index ranges, times.

JSON answers carry ``ranges`` / ``frames`` (`inspector.vlm.answers`); free-text answers say
"frames 120-180 show a person climbing the fence", "the spike at index 11", "between index 300
and 350", "at 1.1 seconds". Ranges are read only from anomalous answers, and there only from
statements that are not about normal parts (a normal answer's "frames 1-40 show people walking"
is not a location), and become the same
items a JSON answer gives: ``{"range": [start, end], "unit": ...}`` with the units the modality
plugins place (``frames`` for a video, ``time_ranges`` for seconds, ``ranges`` for a series).
"""

from __future__ import annotations

import re
from typing import Any

from inspector.vlm.prose import NORMAL, UNDECIDED, ProseVerdict, read_prose

_TO = r"\s*(?:-|–|—|to|through|thru|until|and)\s*"
_INT = r"(\d{1,7})"
_FRAMES = re.compile(
    r"\bframes?\s*(?:#|no\.?|number)?\s*" + _INT + r"(?:" + _TO + r"(?:frame\s*)?#?" + _INT + r")?", re.IGNORECASE
)
_INDEXES = re.compile(
    r"\b(?:index(?:es)?|indices|samples?|data points?|points?|time ?steps?|positions?|timestamps?)"
    r"(?:\s+of\s+(?:the\s+)?(?:anomal\w*|outliers?|abnormal)(?:\s+(?:points?|values?|samples?))?\s+(?:are|is|:)|"
    r"\s*[:=])?\s*"
    r"((?:\d{1,7}(?:\s*(?:-|–|to)\s*\d{1,7})?(?:\s*,\s*(?:and\s+)?|\s+and\s+|\s*$|(?=\D)))+)",
    re.IGNORECASE,
)
_BETWEEN = re.compile(
    r"\b(?:between|from)\s+(?:index|indices|sample|samples|frame|frames|point|points|time ?step|"
    r"time ?steps)\s+"
    + _INT
    + r"\s+(?:and|to)\s+(?:index\s+|sample\s+|frame\s+|point\s+)?"
    + _INT
    + r"\b(?!\s*(?:%|px|mm))",
    re.IGNORECASE,
)
_SECONDS = re.compile(
    r"\b(?:at|around|from|between)\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b"
    r"(?:\s*(?:-|to|and)\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b)?",
    re.IGNORECASE,
)
_STAMP = r"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?)"
_STAMPS = re.compile(r"\b(?:between|from)\s+" + _STAMP + r"\s+(?:and|to|until)\s+" + _STAMP, re.IGNORECASE)
_PAIR = re.compile(r"(\d{1,7})\s*(?:-|–|to)\s*(\d{1,7})")


def prose_ranges(text: str, reading: ProseVerdict | None = None) -> list[dict[str, Any]]:
    """Ranges named in an anomalous answer by its statements that are not about normal parts
    (`reading`: the answer's reading, when the caller has it already)."""
    reading = read_prose(text) if reading is None else reading
    if reading.anomalous is not True:
        return []
    items: list[dict[str, Any]] = []
    for statement in reading.statements:
        if statement.set_aside or statement.polarity in (NORMAL, UNDECIDED):
            continue
        items.extend(_ranges_in(statement.text))
    unique: list[dict[str, Any]] = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique


def _ranges_in(sentence: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    taken: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        if any(a < span[1] and span[0] < b for a, b in taken):
            return False
        taken.append(span)
        return True

    def add(span: tuple[int, int], start: Any, end: Any, unit: str) -> None:
        if free(span):
            found.append({"range": [start, end], "unit": unit, "reason": sentence.strip()})

    for match in _STAMPS.finditer(sentence):
        add(match.span(), match.group(1), match.group(2), "ranges")
    for match in _SECONDS.finditer(sentence):
        start = float(match.group(1))
        add(match.span(), start, float(match.group(2)) if match.group(2) else start, "time_ranges")
    for match in _FRAMES.finditer(sentence):
        start = int(match.group(1))
        add(match.span(), start, int(match.group(2)) if match.group(2) else start, "frames")
    for match in _BETWEEN.finditer(sentence):
        unit = "frames" if "frame" in match.group(0).lower() else "ranges"
        add(match.span(), int(match.group(1)), int(match.group(2)), unit)
    for match in _INDEXES.finditer(sentence):
        if not free(match.span()):
            continue
        for part in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", match.group(1).strip()):
            pair = _PAIR.fullmatch(part.strip())
            ends = (
                (int(pair.group(1)), int(pair.group(2)))
                if pair
                else ((int(part), int(part)) if part.strip().isdigit() else None)
            )
            if ends is not None:
                found.append({"range": list(ends), "unit": "ranges", "reason": sentence.strip()})
    return found
