"""Reading the verdict a free-text answer states: its conclusion, weighed, never guessed.

Real answers of vision-language models (tests/answers/ holds a corpus of them, with sources) do
not look like the one-word replies a prompt asks for. They describe first and conclude last,
hedge their descriptions ("seems", "possibly") and still conclude plainly, state a verdict by
listing findings ("1. The rim has visible scratches."), negate softly ("does not seem to contain
any anomalies"), talk about the reference image or the picture's quality next to the item, and
decline one detail ("I can't measure the gap exactly, but ...") without declining the task. So:

1. The answer is cut into statements (lines, sentences, list items), each read on its own:
   statements about a reference, about the picture's quality, or that restate the question are
   set aside; each remaining one gets a polarity (anomaly found / nothing found / undecided), a
   weight lowered by its hedges, and whether it is a conclusion ("Overall", "Therefore",
   "In conclusion", "Verdict:", "I would classify ...").
2. The verdict is the last firm conclusion, else the verdict word the answer starts with, else
   the weighed findings when they clearly point one way (an anomaly stated of one part outweighs
   "normal" said of other parts; "no defects" said of the whole item does not yield to it); a
   conclusion contradicting the leading word, findings balanced both ways, doubt left standing
   or only speculation ("might be a scratch, or a reflection") give no verdict.
3. A refusal of the task (every statement declines, or a refusal with nothing judged) is reported
   as such, so that it is not asked again.

Cue phrases live in `inspector.vlm.lexicon` (English) and `inspector.vlm.languages` (others).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from inspector.vlm import lexicon as lx
from inspector.vlm.languages import foreign_cues, foreign_hedged, foreign_refusal

ANOMALOUS, NORMAL, UNDECIDED = 1, -1, 0

PLAIN, SPECULATIVE = lx.PLAIN, lx.SPECULATIVE
# findings decide only when one side outweighs the other this many times over
FINDINGS_MARGIN = 2.0
# and when the stronger side has at least this much weight (one speculative remark is not a verdict)
FINDINGS_MIN_WEIGHT = 0.6
# a normal verdict from statements about parts only (no "no defects", no "the item looks normal")
# is read from a longer answer only when every one of its statements reads normal
PARTS_ONLY_MAX_STATEMENTS = 2


@dataclass
class Statement:
    """One sentence or list item, and what it says about the case under inspection."""

    text: str
    index: int
    polarity: int | None = None  # ANOMALOUS / NORMAL / UNDECIDED; None: says nothing about the verdict
    weight: float = 0.0
    conclusive: bool = False
    set_aside: str = ""  # why it does not count: "reference", "image quality", "question", "refusal"
    whole: bool = True  # a "nothing found" about the whole item, not about one part of it


@dataclass
class ProseVerdict:
    """What a free-text answer states: `anomalous` (None: nothing readable), and on what basis."""

    anomalous: bool | None
    basis: str  # "conclusion", "leading word", "findings", "refusal", "conflict", "undecided", "no statement"
    refused: bool = False
    evidence: str = ""  # the statement the verdict rests on
    statements: list[Statement] = field(default_factory=list)


def read_prose(text: str, yes_means_anomalous: bool = True, _in_tag: bool = False) -> ProseVerdict:
    """The verdict a free-text answer states; see the module docstring for the rules."""
    tagged = None if _in_tag else lx.tagged_answer(text)
    if tagged is not None:  # "<think>...</think><answer>Yes</answer>", "\\boxed{No}": the tag is the answer
        answer = read_prose(tagged, yes_means_anomalous, _in_tag=True)
        if answer.anomalous is not None or answer.refused:
            return answer
    cleaned = lx.clean(text)
    if not cleaned.strip():
        return ProseVerdict(None, "no statement")
    if lx.JSON_FRAGMENT.search(cleaned):  # JSON started and broken off: its prose is not a verdict
        return ProseVerdict(None, "no statement")
    statements = [_read_statement(s, i, yes_means_anomalous) for i, s in enumerate(lx.statements(cleaned))]
    for previous, statement in itertools.pairwise(statements):
        # "Is that right? Yes, that is correct.": a yes/no after a question of the answer's own
        if previous.text.rstrip().endswith("?") and lx.opens_with_yes_no(statement.text):
            statement.polarity, statement.conclusive, statement.set_aside = None, False, "question"
    refusals = [s for s in statements if s.set_aside == "refusal"]
    leading = _leading(cleaned, statements, yes_means_anomalous)
    conclusions = [s for s in statements if s.conclusive and s.polarity in (ANOMALOUS, NORMAL, UNDECIDED)]
    result = _decide(leading, conclusions, statements)
    result.statements = statements
    if result.anomalous is None and refusals and result.basis in ("no statement", "undecided"):
        return ProseVerdict(None, "refusal", refused=True, evidence=refusals[0].text, statements=statements)
    return result


def _decide(leading: Statement | None, conclusions: list[Statement], statements: list[Statement]) -> ProseVerdict:
    """The last firm conclusion, else the leading word, else the findings (hedged conclusions among them)."""
    firm = [s for s in conclusions if s.weight >= FINDINGS_MIN_WEIGHT or s.polarity == UNDECIDED]
    if firm:
        last = firm[-1]
        if last.polarity == UNDECIDED:  # "Verdict: uncertain", "Undetermined." is not overridden by findings
            return ProseVerdict(None, "undecided", evidence=last.text)
        if (
            leading is not None
            and leading.polarity != last.polarity
            and leading.index != last.index
            and leading.weight >= FINDINGS_MIN_WEIGHT
        ):
            return ProseVerdict(None, "conflict", evidence=f"{leading.text} / {last.text}")
        return ProseVerdict(last.polarity == ANOMALOUS, "conclusion", evidence=last.text)
    if leading is not None:
        if leading.weight < FINDINGS_MIN_WEIGHT:
            return ProseVerdict(None, "undecided", evidence=leading.text)
        return ProseVerdict(leading.polarity == ANOMALOUS, "leading word", evidence=leading.text)
    return _from_findings(statements)


def _from_findings(statements: list[Statement]) -> ProseVerdict:
    """Weighed findings, when they clearly point one way and are more than speculation.

    A finding is an existence claim ("there is a dent"); "normal" said of one part ("the cable is
    intact") does not contradict it, while "no defects" / "the item looks normal" does.
    """
    polar = [s for s in statements if s.polarity in (ANOMALOUS, NORMAL)]
    undecided = [s for s in statements if s.polarity == UNDECIDED]
    if not polar:
        return ProseVerdict(
            None, "undecided" if undecided else "no statement", evidence=undecided[0].text if undecided else ""
        )
    findings = [s for s in polar if s.polarity == ANOMALOUS]
    normal = [s for s in polar if s.polarity == NORMAL]
    strong_findings = [s for s in findings if s.weight >= FINDINGS_MIN_WEIGHT]
    strong_normal = [s for s in normal if s.weight >= FINDINGS_MIN_WEIGHT]
    whole_normal = [s for s in strong_normal if s.whole]
    if strong_findings and not whole_normal:
        if (
            undecided
            and undecided[-1].index > strong_findings[-1].index
            and len(strong_findings) == 1
            and strong_findings[0].weight < PLAIN
        ):
            return ProseVerdict(None, "undecided", evidence=undecided[-1].text)  # "appears dented, but unsure"
        return ProseVerdict(True, "findings", evidence=strong_findings[-1].text)
    if strong_normal and not strong_findings:
        plain_whole = [s for s in whole_normal if s.weight >= PLAIN]
        if undecided and (undecided[-1].index > strong_normal[-1].index or not plain_whole):
            # "difficult to rule out pneumonia ... no clear opacities": doubt left standing
            return ProseVerdict(None, "undecided", evidence=undecided[-1].text)
        described = [s for s in statements if not s.set_aside]
        unread = [s for s in described if s.polarity is None]
        if not whole_normal and unread and len(described) > PARTS_ONLY_MAX_STATEMENTS:
            # "The leads are straight. The body is intact. The marking is smudged.": parts called fine
            # say nothing of a statement we could not read, which may be the finding; a report whose
            # every statement reads normal, or a short answer to a narrow question, does
            return ProseVerdict(None, "parts only", evidence=unread[0].text)
        return ProseVerdict(False, "findings", evidence=strong_normal[-1].text)
    if strong_findings and whole_normal:
        found = sum(s.weight for s in strong_findings)
        clean = sum(s.weight for s in whole_normal)
        if found >= FINDINGS_MARGIN * clean:
            return ProseVerdict(True, "findings", evidence=strong_findings[-1].text)
        if clean >= FINDINGS_MARGIN * found:
            return ProseVerdict(False, "findings", evidence=whole_normal[-1].text)
        return ProseVerdict(None, "conflict", evidence=f"{strong_findings[-1].text} / {whole_normal[-1].text}")
    return ProseVerdict(None, "undecided", evidence=polar[-1].text)  # only speculation


def _leading(text: str, statements: list[Statement], yes_means_anomalous: bool) -> Statement | None:
    """The verdict word the answer opens with ("Anomalous.", "No, ...", "Verdict: normal")."""
    verdict, _ = lx.leading_verdict(text, yes_means_anomalous)
    if verdict is None or not statements:
        return None
    first = statements[0]
    if first.set_aside == "refusal":
        return None  # "No, I can't help with that."
    hedge = lx.hedge_weight(first.text)
    if lx.UNDECIDED.search(first.text) or (hedge < PLAIN and lx.has_contrast(first.text)):
        hedge = 0.0  # "Normal, probably, but the edge is unclear."
    polarity = (
        first.polarity
        if first.conclusive and first.polarity in (ANOMALOUS, NORMAL)
        else (ANOMALOUS if verdict else NORMAL)
    )
    return Statement(first.text, first.index, polarity, hedge, True)


def _read_statement(text: str, index: int, yes_means_anomalous: bool = True) -> Statement:
    """What one statement says: set aside (refusal, reference, picture quality, question, device),
    undecided, a keyed or bare verdict, or the polarity and weight of its phrases."""
    statement = Statement(text, index)
    lowered = text.lower()
    if foreign_refusal(lowered):
        statement.set_aside = "refusal"
        return statement
    if lx.is_refusal(lowered):
        remainder = lx.after_refusal(lowered)
        if not remainder.strip():
            statement.set_aside = "refusal"
            return statement
        lowered = remainder  # "As an AI, I cannot diagnose, but there appears to be a mass": the rest counts
    keyed = lx.key_value_verdict(lowered)  # "Label: Normal", "Presence of anomaly points: Yes", "Verdict: uncertain"
    if keyed is not None:
        statement.polarity, statement.weight, statement.conclusive = keyed, PLAIN if keyed else 0.0, True
        return statement
    if lx.UNDECIDED.search(lowered):  # also when it blames the picture: "too blurry to rule out pneumonia"
        statement.polarity = UNDECIDED
        # "Undetermined." / "The verdict cannot be determined.": a stated non-verdict, like a conclusion
        statement.conclusive = index == 0 or lx.is_conclusion(lowered)
        return statement
    reason = lx.set_aside_reason(lowered)
    if reason:
        statement.set_aside = reason
        return statement
    statement.conclusive = lx.is_conclusion(lowered)
    # a statement that is a verdict word: "Anomalous.", "No, ..."
    word, _ = lx.leading_verdict(lowered, yes_means_anomalous)
    found = lx.cue_spans(lowered)
    if word is not None and lx.is_bare_verdict(lowered):
        statement.polarity = ANOMALOUS if word else NORMAL
        content = {c.polarity for c in found if c.weight >= FINDINGS_MIN_WEIGHT}
        if lx.opens_with_yes_no(lowered) and len(content) == 1:
            # "Yes, the video contains only normal activities": the words say what the "yes" means
            # (the question may have asked "is it normal?")
            statement.polarity = content.pop()
        statement.weight, statement.conclusive = lx.hedge_weight(lowered), True
        return statement
    foreign_anomalous, foreign_normal = foreign_cues(lowered)
    weight = SPECULATIVE if foreign_hedged(lowered) else lx.hedge_weight(lowered)
    found += [lx.Cue(1, len(lowered), len(lowered), weight)] * foreign_anomalous
    found += [lx.Cue(-1, len(lowered), len(lowered), weight)] * foreign_normal
    if foreign_hedged(lowered) and not found:  # "vielleicht", "可能" and nothing else
        statement.polarity, statement.weight = UNDECIDED, 0.0
        return statement
    sides = {c.polarity for c in found}
    if len(sides) == 2:
        # "the surface is clean, but there is a dent": the clause after the contrast decides;
        # otherwise a finding of one part beats "normal" said of another part
        side = lx.contrast_side(lowered, found)
        if side is None and not any(c.polarity < 0 and c.whole for c in found):
            side = ANOMALOUS
        statement.polarity = side
    elif sides:
        statement.polarity = sides.pop()
    if statement.polarity is None:
        if statement.conclusive:
            statement.polarity = lx.stated_verdict_word(lowered)
            statement.weight = lx.hedge_weight(lowered)
        return statement
    chosen = [c for c in found if c.polarity == statement.polarity]
    statement.weight = max(c.weight for c in chosen)
    statement.whole = any(c.whole for c in chosen)
    return statement
