"""Reading a verdict and a ranking score out of a model's answer — conservatively.

The rule of the house is "never guess": an answer we cannot read with confidence is marked
UNPARSED (anomalous=None), stored and counted, and the operator decides. So:

* JSON is tried first: a bare object, one inside a ```json fence, or one surrounded by prose.
  A verdict value we do not recognise, or objects that disagree, give UNPARSED.
* The free-text fallback accepts a verdict the model states (a leading word as the prompt asks,
  or a conclusion such as "Verdict: normal" after its reasoning), else clear phrases ("no visible
  defects", "there is a crack ...", "findings consistent with a mass"), checking negations clause
  by clause; German, French, Spanish, Italian, Chinese and Japanese phrases come from word tables.
  Refusals, hedges, cut-off JSON, and answers with cues or statements both ways give UNPARSED.
  tests/answer_corpus.json holds the phrasings this is measured against.

The score is P(anomalous), for ranking (AUROC) and thresholds. The best source is the
log-probability of the verdict token (the value of "anomalous", or the leading word) as returned
in an OpenAI-style ``logprobs.content`` list, renormalised over the true/false variants found in
its ``top_logprobs``; otherwise the model's stated confidence; otherwise none. The source is
always recorded.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from inspector.model import ParseStatus, ScoreSource

VERDICT_KEYS = ("anomalous", "is_anomalous", "anomaly", "is_anomaly", "anomaly_detected",
                "defective", "is_defective", "abnormal", "is_abnormal")
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

    @property
    def parsed(self) -> bool:
        return self.status == ParseStatus.PARSED


def parse_answer(raw_text: str, logprobs: list[Any] | dict[str, Any] | None = None) -> ParsedAnswer:
    """Read verdict, confidence, explanation, regions and score from a raw answer."""
    text = raw_text or ""
    found = _find_json_verdict(text)
    if found is not None:
        return _from_json(text, found, logprobs)
    verdict = parse_free_text(text)
    if verdict is None:
        return _unparsed(text)
    score, source = _score(text, "text", verdict, None, logprobs)
    return ParsedAnswer(ParseStatus.PARSED, verdict, None, score, source, text.strip(), [], "text")


def _unparsed(explanation: str) -> ParsedAnswer:
    return ParsedAnswer(ParseStatus.UNPARSED, None, None, None, ScoreSource.NONE, explanation.strip(), [])


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


@dataclass
class _JsonVerdict:
    data: dict[str, Any] | None  # None: JSON was there, but no readable verdict (→ UNPARSED)
    key: str = ""


def _find_json_verdict(text: str) -> _JsonVerdict | None:
    """The verdict object in the text; `_JsonVerdict(None)` when JSON is there but unreadable."""
    objects = json_objects(text)
    if not objects:
        return None
    with_verdict = [(obj, key) for obj in objects if (key := _verdict_key(obj))]
    if not with_verdict:
        return _JsonVerdict(None)
    values = {_as_bool(obj[key]) for obj, key in with_verdict}
    if len(values) != 1 or None in values:
        return _JsonVerdict(None)  # several objects disagree, or the value is not a clear yes/no
    obj, key = with_verdict[0]
    return _JsonVerdict(obj, key)


def json_objects(text: str) -> list[dict[str, Any]]:
    """Top-level dicts found in the text (strict JSON, or Python-literal style as a fallback)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = 0
    while (start := text.find("{", position)) != -1:
        obj: Any = None
        end = start + 1
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            closing = _matching_brace(text, start)
            if closing is not None:
                try:
                    obj = ast.literal_eval(text[start: closing + 1])
                    end = closing + 1
                except (ValueError, SyntaxError, MemoryError, RecursionError):
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
        elif isinstance(item, (list, tuple)) and len(item) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in item
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
    return ParsedAnswer(ParseStatus.PARSED, anomalous, confidence, score, source, explanation,
                        _regions(obj) + _ranges(obj), "json")


# ---------------------------------------------------------------------------------------------
# Free text
# ---------------------------------------------------------------------------------------------

_REFUSALS = re.compile(
    r"\b(?:i|we)(?:\s+am|'m|’m)?\s*(?:can(?:no|'|’)t|cannot|can not|won(?:'|’)t|will not|am unable to|"
    r"'m unable to|’m unable to|unable to|am not able to|'m not able to|’m not able to|do not have|"
    r"don(?:'|’)t have)\s+(?:help|assist|provide|analy[sz]e|comply|diagnose|view|process|access|"
    r"see the image|see images|open|interpret|give|offer|the ability|make|determine|judge|evaluate|assess|"
    r"classify|read|review)"
    r"|\bas an ai\b|\bi(?:'|’)m sorry\b|\bi am sorry\b|^\s*sorry\b"
    r"|\b(?:no|not an?) image(?:s)? (?:was|were|is|are|has been|have been)? ?(?:provided|attached|included|"
    r"shared|uploaded)\b|\bimage(?:s)? (?:is|are|was|were) (?:not|n't) (?:provided|attached|visible|loaded)",
    re.IGNORECASE,
)
_HEDGES = re.compile(
    r"\b(?:possibl[ey]|might|maybe|may be|perhaps|could be|unclear|uncertain|unsure|not (?:sure|certain|"
    r"clear)|hard to (?:say|tell|determine)|difficult to (?:say|tell|determine)|inconclusive|ambiguous|"
    r"(?:cannot|can(?:'|’)t) rule out|likely|unlikely|probably|potential(?:ly)?|suspect(?:ed)?|borderline)\b"
    r"|\b(?:cannot|can(?:'|’)t|can not|unable to|impossible to|not possible to) (?:be )?"
    r"(?:determine[d]?|tell|say|judge|decide|assess|evaluate|identify)",
    re.IGNORECASE,
)
_LABEL_PREFIX = re.compile(
    r"(?:[\s*#>_`\"'\-]+|(?:final\s+)?(?:answer|verdict|result|classification|assessment|decision|"
    r"conclusion|status|résultat|resultat|ergebnis|urteil|befund|risultato|resultado|veredicto|verdetto|"
    r"结论|结果|判定|結果)\s*[:：\-–—]\s*)",
    re.IGNORECASE,
)
_LEADING = re.compile(
    r"(not anomalous|non-anomalous|not defective|not normal|anomalous|abnormal|defective|normal|yes|no)\b",
    re.IGNORECASE,
)
_NOT_A_VERDICT_NEXT = re.compile(
    r"\s*(?:or|and|vs|versus|standards?|references?|samples?|images?|examples?|range|"
    r"operation|conditions?|parts?|items?|products?|units?|ones?|cases?|pieces?|would|should|must|can|may|will)\b"
    r"|\s*[/?]",
    re.IGNORECASE,
)

_DEFECT_NOUN = (
    r"(?:cracks?|scratch(?:es)?|dents?|defects?|anomal(?:y|ies)|abnormalit(?:y|ies)|stains?|"
    r"contamination|contaminants?|fractures?|lesions?|mass(?:es)?|tumou?rs?|nodules?|opacit(?:y|ies)|"
    r"deformations?|corrosion|rust|discolou?ration|foreign (?:object|material|body|particles?)|damage|"
    r"flaws?|misalignment|ha?emorrhage|effusions?|irregularit(?:y|ies)|breaks?|hole|notch(?:es)?|burrs?|"
    r"spikes?|outliers?|sudden (?:drops?|dips?|jumps?)|"
    r"(?:tears?|cuts?|holes?|gaps?) in|"
    r"(?:damaged|broken|cracked|scratched|dented|bent|torn|chipped|missing|deformed|contaminated)\s+\w+)\b"
)
_QUANT = (r"(?:an?|one|two|three|four|several|some|multiple|many|visible|clear|obvious|noticeable|small|"
          r"large|significant|minor|major|distinct|deep|long|\d+)")
# the rest of the sentence before the defect noun; a "." only inside a number ("a 1.5 cm lesion")
_WITHIN_SENTENCE = r"\b(?:[^.;]|\.(?=\d))*?\b"
_ANOMALOUS_PHRASES = [
    re.compile(r"\bthere (?:is|are|appears? to be|seems? to be)\s+" + _QUANT + _WITHIN_SENTENCE + _DEFECT_NOUN),
    re.compile(r"\b(?:is|are|appears?|looks?|seems?)\s+(?:to be\s+)?(?:clearly\s+|visibly\s+|severely\s+|"
               r"slightly\s+)?(?:defective|anomalous|abnormal|damaged|broken|cracked|scratched|dented|"
               r"contaminated|deformed|bent|torn|chipped|misaligned|faulty)\b"),
    re.compile(r"\b(?:shows?|showing|contains?|has|have|exhibits?|reveals?|displays?)\s+" + _QUANT
               + _WITHIN_SENTENCE + _DEFECT_NOUN),
    re.compile(r"\b(?:defects?|anomal(?:y|ies)|cracks?|scratch(?:es)?|damage|contamination|lesions?|"
               r"fractures?)\s+(?:is|are|was|were|has been|have been)\s+(?:clearly\s+)?(?:visible|present|"
               r"detected|found|observed|seen|identified)\b"),
    re.compile(r"\b(?:is|are)\s+missing\b"),
    # radiology report style: "findings consistent with a mass", "impression: displaced fracture ..."
    re.compile(r"\b(?:consistent with|compatible with|findings of)\s+(?:an?\s+)?(?:[\w-]+\s+){0,3}?"
               + _DEFECT_NOUN),
    re.compile(r"\b(?:impression|findings?)\s*:\s*(?!no\b|normal|unremarkable|negative)(?:[\w-]+\s+){0,3}?"
               + _DEFECT_NOUN),
    re.compile(r"\b(?:anomal(?:y|ies)|defects?|damage|cracks?)\s+(?:detected|found|present|identified|"
               r"observed)\b"),
]
_NORMAL_NOUN = (r"(?:defects?|anomal(?:y|ies)|abnormalit(?:y|ies)|damage|flaws?|issues?|problems?|"
                r"irregularit(?:y|ies)|deviations?|findings?|cracks?|scratch(?:es)?|contamination|lesions?|spikes?|"
                r"outliers?|drops?|dips?|"
                r"signs? of \w+)")
_NORMAL_PHRASES = [
    re.compile(r"\bno\s+(?:\w+\s+){0,2}?" + _NORMAL_NOUN + r"\b"),
    re.compile(r"\b(?:appears?|looks?|seems?|is|are)\s+(?:to be\s+)?(?:completely\s+|entirely\s+|"
               r"perfectly\s+|fully\s+|totally\s+)?(?:normal|intact|defect[- ]free|flawless|undamaged|"
               r"anomaly[- ]free|unremarkable|in good condition|within normal limits)\b"),
    re.compile(r"\bfree (?:of|from)\s+(?:any\s+)?(?:visible\s+)?(?:defects?|anomal\w*|damage|flaws?|"
               r"abnormalit\w*)"),
    re.compile(r"\b(?:within normal limits|unremarkable|"
               r"nothing (?:abnormal|anomalous|unusual|suspicious))\b"),
    re.compile(r"(?:can(?:no|'|’)t|cannot|can not|do not|don(?:'|’)t|did not|didn(?:'|’)t|does not|"
               r"doesn(?:'|’)t)\s+(?:see|find|detect|identify|observe|spot|notice|show|contain|have|exhibit)"
               r"\s+(?:any\s+)?(?:\w+\s+){0,2}?" + _NORMAL_NOUN),
    re.compile(r"(?:does not|doesn(?:'|’)t|do not|don(?:'|’)t)\s+(?:appear|seem|look)\s+(?:to be\s+)?"
               r"(?:defective|anomalous|abnormal|damaged|broken|faulty)"),
    re.compile(r"\bnot (?:anomalous|defective|abnormal|damaged)\b"),
    re.compile(r"\bwithout\s+(?:any\s+)?(?:\w+\s+){0,2}?" + _NORMAL_NOUN + r"\b"),
]
_NEGATION = re.compile(r"\b(?:no|not|never|without|neither|nor|cannot|hardly|free of)\b|n(?:'|’)t\b")
_PARTIAL = re.compile(
    r"\b(?:rest|otherwise|remaining|other|apart from|except|besides|aside from|elsewhere)\b")
_CLAUSE_BREAK = re.compile(r"[,;:()]|\b(?:but|however|although|though|while|whereas|yet)\b")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\n])\s+")
# JSON that was started but could not be read (cut off, broken): its prose is not a verdict
_JSON_FRAGMENT = re.compile(r"\{\s*[\"']\w+[\"']\s*:")

# ---------------------------------------------------------------------------------------------
# Other languages. Each table has negated forms and plain words; every match is blanked out
# before the next pattern runs, so "nicht defekt", "没有异常" or "異常なし" are
# read as normal and never again as the bare "defekt" / "异常" / "異常" that they contain.
# Words spelt as in English ("normal") are left to the English rules.
# ---------------------------------------------------------------------------------------------

_FOREIGN_TABLES: dict[str, tuple[list[tuple[str, bool]], list[tuple[str, bool]]]] = {
    "de": ([  # negated forms
        (r"\bnicht\s+(?:in ordnung|normal|einwandfrei|fehlerfrei)\b", True),
        (r"\bnicht\s+(?:\w+\s+)?(?:defekt|anomal|fehlerhaft|beschädigt|auffällig)\w*", False),
        (r"\bkein\w*\s+(?:\w+\s+){0,2}?(?:defekt\w*|fehler\w*|auffälligkeit\w*|anomalie\w*|schäden|"
         r"schaden|risse?|kratzer|mängel|beschädigung\w*)", False),
    ], [  # plain words
        (r"\b(?:in ordnung|unauffällig|fehlerfrei|einwandfrei|ohne befund)\b", False),
        (r"\b(?:anomal|defekt|fehlerhaft|beschädigt|auffällig)\b", True),
        (r"\b(?:ein|eine|einen)\s+(?:\w+\s+)?(?:riss|kratzer|delle|fleck|bruch|loch)\b", True),
    ]),
    "fr": ([  # negated forms
        (r"\b(?:n[’']?\s*(?:est|sont)\s+)?pas\s+(?:normale?s?|normaux|conformes?)\b", True),
        (r"\bn[’']?\s*(?:est|sont|a|ont)\s+pas\s+(?:\w+\s+)?(?:défectueu\w*|anormal\w*|endommagé\w*)", False),
        (r"\b(?:aucun\w*|pas d[’']|sans)\s*(?:\w+\s+)?(?:défauts?|anomalies?|dommages?|fissures?|rayures?)", False),
    ], [  # plain words
        (r"\b(?:normales?|normaux|conformes?|intactes?)\b", False),  # not "normal", "intact": English
        (r"\b(?:défectueu(?:x|se)|anormale?|anomalie\s+(?:détectée|présente|visible)|endommagée?)\b", True),
        (r"\b(?:présente|montre|il y a)\s+(?:une?|des)\s+(?:\w+\s+)?(?:bosses?|fissures?|rayures?|"
         r"taches?|trous?|défauts?)\b", True),
    ]),
    "es": ([  # negated forms
        (r"\bno\s+(?:es|está|son|están)\s+normal(?:es)?\b", True),
        (r"\bno\s+(?:es|está|son|están)\s+(?:\w+\s+)?(?:defectuos\w*|anómal\w*|anormal\w*|dañad\w*)", False),
        (r"\b(?:sin|ningún|ninguna|no (?:se )?(?:observan?|detectan?|ven?|hay))\s+(?:\w+\s+)?(?:defectos?|"
         r"anomalías?|daños?|grietas?|rayas?)", False),
    ], [  # plain words
        (r"\b(?:anómal[oa]|anormal|defectuos[oa])\b", True),
        (r"\bhay\s+(?:una?|varios|varias)\s+(?:\w+\s+)?(?:grietas?|rayas?|defectos?|abolladuras?|manchas?)\b",
         True),
    ]),
    "it": ([  # negated forms
        (r"\bnon\s+(?:è|e'|sono)\s+(?:normal[ei]|integr[oai]|conform[ei])\b", True),
        (r"\bnon\s+(?:è|e'|sono)\s+(?:\w+\s+)?(?:difettos\w*|anomal\w*|danneggiat\w*)", False),
        (r"\bnon\s+(?:ci sono|c'è|ha|presenta|si (?:vedono|osservano|notano))\s+(?:\w+\s+)?(?:difetti|difetto|"
         r"anomali[ae]|danni|crepe?|graffi)", False),
        (r"\b(?:nessun[ao]?|senza|privo di)\s+(?:\w+\s+)?(?:difetti|difetto|anomali[ae]|danni|crepe?|graffi)",
         False),
    ], [  # plain words
        (r"\b(?:normale|integro|conforme)\b", False),
        (r"\b(?:anomal[oa]|difettos[oa]|danneggiat[oa])\b", True),
        (r"\b(?:è presente|sono presenti|c'è|ci sono)\s+(?:una?|un'|dei|delle|degli)\s*(?:\w+\s+)?"
         r"(?:crep[ae]|graffi[o]?|difett[oi]|ammaccatur[ae]|macchi[ae]|fori|foro|rottur[ae])\b", True),
        (r"\b(?:manca|mancano)\b", True),
    ]),
    "zh": ([  # negated forms
        (r"不正常|不是正常", True),
        (r"(?:没有|無|无|未见|未發現|未发现|未检测到|不存在|并无|不是)(?:任何)?(?:明显)?(?:的)?"
         r"(?:异常|異常|缺陷|瑕疵|划痕|裂纹|损伤|破损)", False),
    ], [  # plain words
        (r"正常", False),
        (r"异常|(?:有|存在)(?:明显)?(?:的)?(?:缺陷|瑕疵|划痕|裂纹|损伤|破损)", True),
    ]),
    "ja": ([  # negated forms
        (r"正常(?:で|では|じゃ)(?:は)?(?:ない|ありません)", True),
        (r"(?:異常|欠陥|傷|キズ|ひび|割れ|不良)(?:は|が|も)?(?:なし|無し|ない|ありません|見(?:られ|当たり)ません|"
         r"認められません|確認されません)", False),
    ], [  # plain words
        (r"正常", False),
        (r"異常|不良|(?:欠陥|傷|キズ|ひび|割れ)(?:が|も)?(?:あり|ある|入って)", True),
    ]),
}
# the negated forms of every language run before any plain word: "non è normale" must not leave
# "normale" to the French table, nor "正常ではありません" leave "正常" to the Chinese one
_FOREIGN_PATTERNS = [(re.compile(pattern, re.IGNORECASE), verdict)
                     for stage in (0, 1) for table in _FOREIGN_TABLES.values() for pattern, verdict in table[stage]]
# refusals in the other languages ("I can't analyse / help"): like English ones, never a verdict
_FOREIGN_REFUSALS = re.compile(
    r"\b(?:je ne (?:peux|suis) pas (?:en mesure d[’']|capable d[’'])?\s*(?:analyser|aider|fournir|diagnostiquer)|"
    r"no puedo (?:ayudar|analizar|proporcionar|diagnosticar)|lo siento|"
    r"non posso (?:aiutare|analizzare|fornire|diagnosticare)|mi dispiace|"
    r"ich kann (?:\w+\s+){0,2}nicht (?:helfen|analysieren|beurteilen|diagnostizieren)|es tut mir leid)\b"
    r"|无法(?:分析|诊断|协助|帮助)|不能(?:分析|诊断|协助)|抱歉|申し訳|できかねます|(?:診断|分析)(?:は)?できません",
    re.IGNORECASE,
)
_FOREIGN_HEDGES = re.compile(
    r"\b(?:vielleicht|möglicherweise|eventuell|schwer zu sagen|unklar|nicht sicher|"
    r"peut-être|peut être|difficile à dire|incertain|pas sûr|"
    r"quizás|quizá|tal vez|es posible|posiblemente|no estoy segur[oa]|"
    r"forse|potrebbe|non sono sicur[oa]|difficile dirlo)\b"
    r"|可能|也许|不确定|无法确定|无法判断|かもしれ|判断できません|わかりません|不明",
    re.IGNORECASE,
)


def _foreign_cues(text: str) -> tuple[int, int]:
    """Counts of anomalous and normal phrases from the other-language tables (see above)."""
    remaining = text.lower()
    counts = {True: 0, False: 0}
    for pattern, verdict in _FOREIGN_PATTERNS:
        remaining, found = pattern.subn(" ", remaining)
        counts[verdict] += found
    return counts[True], counts[False]


def leading_verdict(text: str) -> tuple[bool | None, int]:
    """The verdict word the answer starts with (after labels/markdown) and its offset; (None, -1) if none.

    "Yes"/"No" only count when followed by punctuation ("No visible defects" goes to the phrases,
    and "No idea" to UNPARSED); a verdict word followed by "or", "and", "standards" etc. is not one.
    """
    position = 0
    while match := _LABEL_PREFIX.match(text, position):
        if match.end() == position:
            break
        position = match.end()
    match = _LEADING.match(text, position)
    if not match:
        return None, -1
    word = match.group(1).lower()
    rest = text[match.end():]
    if word in ("yes", "no"):
        if rest and not re.match(r"\s*(?:[.,;:!\-–—)]|$)", rest):
            return None, -1
    elif _NOT_A_VERDICT_NEXT.match(rest):
        return None, -1
    elif word in ("anomalous", "abnormal", "defective"):
        # "Anomalous: no" is a key-value line, not the word "Anomalous" as a verdict.
        value = re.match(r"\s*[:=\-]\s*(yes|no|true|false)\b", rest, re.IGNORECASE)
        if value:
            return value.group(1).lower() in ("yes", "true"), match.start()
    return word not in ("normal", "no", "not anomalous", "non-anomalous", "not defective"), match.start()


def parse_free_text(text: str) -> bool | None:
    """Verdict from prose, or None when unclear (refusal, hedge, conflicting or no cues).

    The order matters: refusals and cut-off JSON first (nothing in them is a verdict); then the
    verdict the model states itself, at the start or as a conclusion (CoT answers mention both
    "normal" and "anomalous" on the way); only then the phrase cues, English and other languages.
    """
    stripped = text.strip()
    if not stripped or _REFUSALS.search(stripped) or _FOREIGN_REFUSALS.search(stripped):
        return None
    if _JSON_FRAGMENT.search(stripped):
        return None
    stated = _stated_verdict(stripped)
    if stated is not _NO_STATEMENT:
        return stated
    if _HEDGES.search(stripped) or _FOREIGN_HEDGES.search(stripped):
        return None
    anomalous_cues, normal_cues = _english_cues(stripped)
    foreign_anomalous, foreign_normal = _foreign_cues(stripped)
    anomalous_cues += foreign_anomalous
    normal_cues += foreign_normal
    if anomalous_cues and not normal_cues:
        return True
    if normal_cues and not anomalous_cues:
        return False
    return None


_NO_STATEMENT: Any = object()  # sentinel: the answer states no verdict word of its own


def _stated_verdict(text: str) -> bool | Any | None:
    """The verdict the answer states (leading word, conclusion), None if hedged or contradictory.

    Returns `_NO_STATEMENT` when there is none, so the phrase cues get their turn.
    """
    leading, offset = leading_verdict(text)
    if leading is not None and _HEDGES.search(_sentence_at(text, offset)):
        return None  # "Normal, probably, but I'm not certain" is not a verdict
    concluded = _conclusion(text)
    if leading is not None and concluded is not None and leading != concluded:
        return None
    if leading is not None:
        return leading
    if concluded is not None:
        return concluded
    return _NO_STATEMENT


_VERDICT_WORD = r"(not anomalous|non-anomalous|not defective|not normal|anomalous|abnormal|defective|normal)\b"
_SUBJECT = r"(?:it is|it's|this is|the \w+ is|the \w+ \w+ is)\s+"
_CONCLUSIONS = re.compile(
    # labelled: "Verdict: anomalous", "Final answer - Normal", "| Verdict | Normal |", "I conclude: normal"
    r"\b(?:verdict|answer|conclusion|classification|result|assessment|i conclude|in conclusion)"
    r"[\s:*|\-–—,_]*(?:" + _SUBJECT + r")?" + _VERDICT_WORD
    # connectors: "Therefore the sample is normal", "so it is normal", "So: anomalous"
    + r"|\b(?:therefore|thus|hence|so|overall)[,:]?\s+" + _SUBJECT + _VERDICT_WORD
    + r"|\b(?:therefore|thus|hence|so|overall)\s*:\s*" + _VERDICT_WORD,
    re.IGNORECASE,
)
_LAST_SENTENCE_VERDICT = re.compile(r"(?:^|[.!?\n])[\s*#_`\"']*" + _VERDICT_WORD + r"[\s*_`\"'.!]*$", re.IGNORECASE)
_FALSE_VERDICT_WORDS = ("normal", "not anomalous", "non-anomalous", "not defective")


def _conclusion(text: str) -> bool | None:
    """The last stated conclusion ("Verdict: normal", "... so it is normal", a final "Anomalous.")."""
    matches = [m for m in _CONCLUSIONS.finditer(text) if not _NOT_A_VERDICT_NEXT.match(text, m.end())]
    last = _LAST_SENTENCE_VERDICT.search(text)
    if last and not (matches and matches[-1].end() > last.start()):
        matches.append(last)
    if not matches:
        return None
    match = matches[-1]
    if _HEDGES.search(_sentence_at(text, match.start(match.lastindex or 0))):
        return None
    word = next(g for g in match.groups() if g).lower()
    return word not in _FALSE_VERDICT_WORDS


def _sentence_at(text: str, offset: int) -> str:
    """The sentence (or line) around `offset`, where a hedge would qualify a verdict word."""
    start = max(text.rfind(c, 0, offset) for c in ".!?\n") + 1
    ends = [i for c in ".!?\n" if (i := text.find(c, offset)) != -1]
    return text[start: min(ends) if ends else len(text)]


def _english_cues(text: str) -> tuple[int, int]:
    """Counts of un-negated anomaly and normal phrases, sentence by sentence."""
    anomalous_cues = normal_cues = 0
    for sentence in _SENTENCE_BREAK.split(text.lower()):
        for pattern in _ANOMALOUS_PHRASES:
            for match in pattern.finditer(sentence):
                if not _negated(sentence, match, inside=True):
                    anomalous_cues += 1
        for pattern in _NORMAL_PHRASES:
            for match in pattern.finditer(sentence):
                prefix = _clause_prefix(sentence, match.start())
                if not _NEGATION.search(prefix) and not _PARTIAL.search(prefix):
                    normal_cues += 1
    return anomalous_cues, normal_cues


def _clause_prefix(sentence: str, start: int) -> str:
    prefix = sentence[:start]
    breaks = list(_CLAUSE_BREAK.finditer(prefix))
    return prefix[breaks[-1].end():] if breaks else prefix


def _negated(sentence: str, match: re.Match[str], inside: bool) -> bool:
    """A cue is void when its clause negates it before or (for anomaly cues) within the match."""
    text = _clause_prefix(sentence, match.start()) + (match.group(0) if inside else "")
    return bool(_NEGATION.search(text))


# ---------------------------------------------------------------------------------------------
# Score
# ---------------------------------------------------------------------------------------------

_POSITIVE_TOKENS = ("true", "yes", "anomalous", "abnormal", "defective", "anomaly")
_NEGATIVE_TOKENS = ("false", "no", "normal", "not", "non")


def _score(text: str, method: str, anomalous: bool, confidence: float | None, logprobs: Any,
           key: str = "") -> tuple[float | None, ScoreSource]:
    p = logprob_p_anomalous(logprobs, method, anomalous, key) if logprobs else None
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


def logprob_p_anomalous(logprobs: Any, method: str, anomalous: bool, key: str = "") -> float | None:
    """P(anomalous) from the verdict token's top log-probabilities, or None when it cannot be found."""
    tokens = _token_list(logprobs)
    if not tokens:
        return None
    joined = "".join(t["token"] for t in tokens)
    if method == "json":
        pattern = r"[\"']" + re.escape(key) + r"[\"']\s*:\s*[\"']?"
        match = re.search(pattern, joined)
        if not match:
            return None
        offset = match.end()
    else:
        _, offset = leading_verdict(joined.lstrip())
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
