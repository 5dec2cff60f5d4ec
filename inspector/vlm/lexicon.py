"""English cue phrases for reading verdicts out of prose (`inspector.vlm.prose` uses them).

Kept apart from the reading rules so that a phrase can be added without touching the logic, and
the logic read without wading through regular expressions. Every pattern works on lower-cased
text that `clean` has stripped of markdown and curly quotes.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

# ------------------------------------------------------------------------------------ cleaning

_MARKDOWN = re.compile(r"\*\*|__|`+|^#{1,6}\s*|^>\s*", re.MULTILINE)
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})
_TABLE_RULE = re.compile(r"^[ \t]*+\|?[ \t]*+:?-{3,}.*$", re.MULTILINE)
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def squeeze(text: str) -> str:
    """Runs of spaces to one space, runs of blank lines to one: nothing a reader needs is lost, and
    no pattern has to walk a run of 100,000 blanks (a degenerate answer) more than once."""
    return _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", text))


_ANSWER_TAG = re.compile(r"<answer>([^<]*)(?:</answer>|$)|\\boxed\{([^{}]*)\}", re.IGNORECASE)
_TAG = re.compile(r"</?[a-z_]{2,20}>|<\|[a-z_]+\|>|</s>", re.IGNORECASE)


def tagged_answer(text: str) -> str | None:
    """The content of the last ``<answer>...</answer>`` or ``\\boxed{...}``, if the answer has one."""
    found = None
    for match in _ANSWER_TAG.finditer(text or ""):
        found = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
    return found or None


_CONTRACTIONS = [
    (re.compile(pattern, re.IGNORECASE), repl)
    for pattern, repl in (
        (r"\b(there|it|that|what|here|this)'s\b", r"\1 is"),
        (r"\bcan't\b", "cannot"),
        (r"\bwon't\b", "will not"),
        (r"\b(is|are|was|were|does|do|did|has|have|had|could|would|should)n't\b", r"\1 not"),
        (r"\bi'm\b", "i am"),
        (r"\b(they|we|you)'re\b", r"\1 are"),
        (r"\b(i|you|we|they)'ve\b", r"\1 have"),
    )
]


def clean(text: str) -> str:
    """Plain text: markdown, tags, table rules, curly quotes and contractions ("there's") undone;
    class names written with underscores ("People_falling") as words."""
    text = squeeze((text or "").translate(_QUOTES))
    text = _TAG.sub("\n", text)
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = re.sub(r"(?<=[A-Za-z])_(?=[A-Za-z])", " ", text)
    text = _TABLE_RULE.sub("", text)
    text = _MARKDOWN.sub("", text)
    text = text.replace("|", " | ")
    return re.sub(r"[ \t]+", " ", text)


# ---------------------------------------------------------------------------------- statements

_LIST_MARKER = re.compile(r"^\s*(?:[-*•+]|\(?\d{1,2}[.)]|\(?[a-h][.)])\s+")
_ABBREVIATIONS = r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\betc)(?<!\bapprox)(?<!\bfig)(?<!\bno)(?<!\bdr)(?<!\bca)"
_SENTENCE_END = re.compile(
    _ABBREVIATIONS + r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|(?<=[.!?])\s+(?=\d{1,2}[.)]\s)"
    r"|(?<=[。！？])|(?<=[a-z]\.\.)(?=[A-Z][a-z])"
)
_LABEL_ONLY = re.compile(
    r"^\W*(?:final\s+)?(?:answer|verdict|result|conclusion|assessment|decision|summary|"
    r"classification|impression|findings?|output|response|evaluation)\s*[:\-]?\W*$",
    re.IGNORECASE,
)


# The phrase patterns scan a statement with lazy gaps; a statement without any punctuation (a
# degenerate answer repeating one word) is cut into pieces of this size so reading stays linear.
MAX_STATEMENT_CHARS = 4000


def statements(text: str) -> list[str]:
    """Lines, list items and sentences, in order; a lone label line ("Conclusion:") joins the next.

    Statements longer than `MAX_STATEMENT_CHARS` are cut at spaces into pieces of at most that size.
    """
    return [piece for statement in _statements(text) for piece in pieces(statement)]


def pieces(statement: str, limit: int = MAX_STATEMENT_CHARS) -> list[str]:
    """A statement cut at spaces into pieces of at most `limit` characters."""
    if len(statement) <= limit:
        return [statement]
    out = []
    while len(statement) > limit:
        cut = statement.rfind(" ", limit // 2, limit)
        cut = cut if cut > 0 else limit
        out.append(statement[:cut].strip())
        statement = statement[cut:]
    if statement.strip():
        out.append(statement.strip())
    return [p for p in out if p]


def _statements(text: str) -> list[str]:
    out: list[str] = []
    pending_label = ""
    for line in text.split("\n"):
        line = _LIST_MARKER.sub("", line).strip()
        if not line:
            continue
        if _LABEL_ONLY.match(line):
            pending_label = (pending_label + " " + line).strip()
            continue
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if sentence:
                out.append((pending_label + " " + sentence).strip() if pending_label else sentence)
                pending_label = ""
    if pending_label:
        out.append(pending_label)
    return out


# ----------------------------------------------------------------------------------- refusals

# Declining the task. Declining a detail inside a substantive answer is handled by the reader:
# a refusal counts only when nothing else in the answer is a verdict.
_REFUSAL = re.compile(
    r"\b(?:i|we)(?: am|'m)?\s*(?:cannot|can't|can not|won't|will not|am unable to|'m unable to|unable to|"
    r"am not able to|'m not able to|not able to|do not have|don't have)\s+(?:help|assist|provide (?:a |any )?"
    r"(?:diagnos\w*|medical|analysis|assessment|interpretation|opinion)|analy[sz]e (?:this|the|medical|these|images?)|"
    r"comply|diagnose|view (?:the |this )?images?|process (?:the |this )?images?|access|see (?:the |this )?images?|"
    r"open|interpret (?:this|the|medical)|offer (?:a )?(?:diagnos\w*|medical)|the ability|make (?:a )?"
    r"(?:diagnos\w*|medical)|give (?:a )?(?:diagnos\w*|medical))"
    r"|\bas an ai\b|^\s*(?:i'm|i am) sorry\b(?! for)|^\s*sorry\b(?! for)"
    r"|\b(?:no|not an?) images? (?:was|were|is|are|has been|have been)? ?(?:provided|attached|included|shared|"
    r"uploaded)\b|\bimages? (?:is|are|was|were) (?:not|n't) (?:provided|attached|visible|loaded)"
    r"|\b(?:consult|seek (?:the )?(?:advice|opinion) of) (?:a|an|your) (?:qualified |medical |healthcare )?"
    r"(?:professional|radiologist|doctor|physician|specialist)\b",
    re.IGNORECASE,
)


_AFTER_REFUSAL = re.compile(r"\b(?:but|however|that said|nevertheless|nonetheless|still)\b[,:]?\s*")


def is_refusal(text: str) -> bool:
    return _REFUSAL.search(text) is not None


def after_refusal(text: str) -> str:
    """What a statement says after declining a detail: "I can't diagnose, but the image shows a mass"
    → "the image shows a mass"; "" when it declines and says nothing more."""
    for _ in range(4):  # "I'm sorry, but I can't help with that": declined twice, nothing more
        refusal = _REFUSAL.search(text)
        if refusal is None:
            return text
        rest = _AFTER_REFUSAL.search(text, refusal.end())
        if rest is None:
            return ""
        text = text[rest.end() :]
    return ""


# ------------------------------------------------------------------------------------- hedges

# Statements that decline to decide: they are neither verdict, and they outweigh speculation.
UNDECIDED = re.compile(
    r"\b(?:not (?:sure|certain)|uncertain|unsure|inconclusive|ambiguous|borderline|undetermined|indeterminate|"
    r"hard to (?:say|tell|determine|judge|assess|be certain)|difficult to (?:say|tell|determine|judge|assess|"
    r"be certain|definitively)|"
    r"(?:cannot|can't|can not|unable to|impossible to|not possible to|no way to) (?:be )?(?:definitively |"
    r"conclusively |reliably |accurately |confidently )?(?:determine[d]?|tell|say|judge|decide|conclude|"
    r"confirm|be sure|be certain)\b(?! that)(?!\s+(?:the\s+)?(?:exact\s+|precise\s+|specific\s+|underlying\s+)?"
    r"(?:cause|severity|nature|type|origin|extent|etiology|aetiology|reason|size|age|material|source|identity)\b)|"
    r"it (?:is|remains) unclear (?:whether|if)|"
    # the item to judge is not in the picture: "there is no chair in the image", "no chair to inspect"
    r"(?:there is no|does not (?:show|contain|depict)|doesn't (?:show|contain|depict)|no) (?:an? )?(?!visible\b)"
    r"\w+(?: \w+)? (?:in the (?:image|picture|photo)\b(?! (?:is|are|appears?|seems?))|to (?:inspect|evaluate|assess))|"
    r"(?:could|may|might) (?:also |just |simply |only |merely )?be (?:a |an |the |just )?(?:reflection|"
    r"shadow|lighting|glare|texture|artifact|noise|normal variation|part of)|"
    r"(?:further|additional|more) (?:inspection|investigation|examination|analysis|information|context|images?) "
    r"(?:is|are|would be|may be|might be) (?:needed|required|necessary) (?:to (?:determine|confirm|tell|decide)|"
    r"for (?:a )?(?:conclusive|definitive|final|accurate|definite) (?:diagnosis|assessment|determination|answer))|"
    r"(?:a )?(?:definitive|conclusive) (?:\w+ ){0,2}(?:is|was) not possible)",
    re.IGNORECASE,
)
_SPECULATIVE = re.compile(
    r"\b(?:might|may|could|possibl[ey]|perhaps|maybe|potential(?:ly)?|suspect(?:ed)?|suspicious of|"
    r"cannot rule out|can't rule out|if (?:it|this|that) is|would need|would (?:include|be|show|mean|indicate|"
    r"suggest|appear|look)|can (?:show|have|cause|present|"
    r"include|lead|result|appear|occur|indicate|suggest)|can also (?:show|have|cause|present|appear|occur))\b",
    re.IGNORECASE,
)
_MILD = re.compile(
    r"\b(?:appears?|appearing|seems?|seemingly|looks? (?:like|to be)|likely|probabl[ey]|suggest(?:s|ing|ive)?|"
    r"apparent(?:ly)?|presumabl[ey]|mostly|largely|relatively|somewhat|fairly)\b",
    re.IGNORECASE,
)


# the weight of a statement by its hedges: plain, mildly hedged ("appears", "likely"), speculative ("might")
PLAIN, MILD, SPECULATIVE = 1.0, 0.7, 0.35


def hedge_weight(text: str) -> float:
    """`PLAIN`, `MILD` or `SPECULATIVE`, by the strongest hedge in the text."""
    if _SPECULATIVE.search(text):
        return SPECULATIVE
    if _MILD.search(text):
        return MILD
    return PLAIN


# -------------------------------------------------------------------------------- set aside

# A statement whose subject is a reference / normal example, not the item under inspection.
_REFERENCE_SUBJECT = re.compile(
    r"^(?:in |on |for )?(?:the |both |all |each |these |those )?(?:first |two |three |other |provided )?"
    r"(?:normal|reference|template|good|defect-free|non-defective|example|sample normal|ok)"
    r"(?: (?:reference|sample|example|normal))? (?:images?|samples?|pictures?|photos?|examples?|items?|ones?|"
    r"objects?|parts?|references?|tiles?|cases?)\b(?!.*\b(?:whereas|while|but|however|unlike|compared|than)\b)"
    r"|^(?:like|as in) the (?:normal|reference)"
    # what samples of a kind look like, not this one: "Anomalous samples have burrs."
    r"|^(?:anomalous|defective|abnormal|normal|good|bad|faulty) (?:samples|items|parts|ones|products|units|"
    r"pieces|examples)\b",
    re.IGNORECASE,
)
# A statement about the picture itself (blur, noise, lighting), not about what it shows.
_QUALITY = re.compile(
    r"\b(?:blur(?:ry|riness)?|noise|noisy|compression|jpeg|pixelat\w*|resolution|exposure|over-?exposed|"
    r"under-?exposed|out of focus|in focus|focus|image quality|picture quality|photo quality|quality of the "
    r"(?:image|picture|photo)|lighting|illumination|glare|grain(?:y|iness)?|sharp(?:ness)?|contrast|"
    r"artifacts? (?:in|of) the (?:image|picture|photo)|(?:image|imaging|compression|digital) artifacts?|"
    r"(?:image|picture|photo|video|footage|frame)s? (?:is|are|appears?|looks?) (?:\w+ )?(?:clear|sharp|crisp|"
    r"well[- ]lit|bright|dark))\b",
    re.IGNORECASE,
)
_OBJECT_FINDING = re.compile(
    r"\b(?:defect\w*|anomal\w*|abnormal\w*|crack\w*|scratch\w*|dent\w*|lesion\w*|tumou?r\w*|mass(?:es)?|"
    r"fracture\w*|damage\w*|broken|contamina\w*|missing|hole\w*|stain\w*|nodule\w*|hemorrhage|haemorrhage)\b",
    re.IGNORECASE,
)
# The question or the task restated: "To determine whether the part is anomalous, I will ..."
_QUESTION = re.compile(
    r"^(?:to (?:determine|decide|assess|check|evaluate|identify|answer)|in order to|let'?s|let me|i will|i'll|"
    r"we (?:need|will|must)|first,? (?:i|we|let)|the (?:task|question) is|you (?:asked|want))\b"
    r"|\?\s*$",
    re.IGNORECASE,
)


# Medical devices in a scan are expected, not findings (a report of lines and tubes only is normal).
_DEVICE = re.compile(
    r"\b(?:pacemakers?|pacer|icd|defibrillators?|catheters?|picc|central (?:venous )?lines?|lines?|tubes?|"
    r"leads?|electrodes?|clips?|markers?|sternotomy wires?|wires?|hardware|stents?|ports?|drains?|"
    r"devices?|prosthes[ie]s|implants?|screws?|plates?|sutures?|staples?)\b"
)
_NOT_SHOWN = re.compile(r"\bnot (?:fully )?(?:included|captured|imaged)\b|\b(?:is|are) (?:cut off|cropped)\b")


def set_aside_reason(text: str) -> str:
    """Why a statement says nothing about the item under inspection ("" when it may)."""
    if _QUESTION.search(text) and not _CONCLUSION.search(text):
        return "question"
    if _REFERENCE_SUBJECT.search(text):
        return "reference"
    if _QUALITY.search(text) and not _OBJECT_FINDING.search(_QUALITY.sub(" ", text)):
        return "image quality"
    if _NOT_SHOWN.search(text) and not _OBJECT_FINDING.search(text):
        return "image quality"
    if _DEVICE.search(text) and not _OBJECT_FINDING.search(text) and not cue_spans(text):
        return "device"
    return ""


# -------------------------------------------------------------------------------- conclusions

_CONCLUSION = re.compile(
    r"^(?:in conclusion|in summary|to summari[sz]e|to conclude|overall|all in all|in short|therefore|thus|hence|"
    r"consequently|so\b|final(?:ly)?|based on (?:this|these|the|my|that|what)|given (?:this|these|the)|"
    r"from (?:this|these|the) (?:analysis|observations?|comparison|image)|after (?:careful |close )?"
    r"(?:analy\w+|examin\w+|inspect\w+|review\w*|compar\w+)|upon (?:careful |close )?(?:analy\w+|examin\w+|"
    r"inspect\w+|review\w*)|this (?:means|indicates|suggests)|as a result|conclusion|verdict|answer|result|"
    r"assessment|classification|decision|impression|summary|evaluation)\b"
    r"|\b(?:i (?:would )?(?:conclude|classify|consider|determine|judge|rate|label|categori[sz]e|deem|mark)|"
    r"(?:is|are|be|should be|can be|would be) (?:classified|considered|deemed|labell?ed|categori[sz]ed|judged|"
    r"determined|identified|marked|rated|regarded) (?:to be |as )|my (?:verdict|answer|conclusion|assessment)|"
    r"the (?:final )?(?:verdict|answer|conclusion) is)\b",
    re.IGNORECASE,
)


_CONCLUDING_CLAUSE = re.compile(r"[,;]\s*(?:and\s+)?(?:so|therefore|thus|hence|which means)\b")


def is_conclusion(text: str) -> bool:
    """A statement that concludes ("Overall, ...", "Therefore ...", "I would classify it as ...")."""
    return _CONCLUSION.search(text) is not None or _CONCLUDING_CLAUSE.search(text) is not None


_BARE_VERDICT = re.compile(
    r"^\W*(?:(?:final\s+)?(?:answer|verdict|result|classification|assessment|decision|"
    r"conclusion)\s*[:\-]\s*)?(?:not anomalous|non-anomalous|not defective|not normal|"
    r"anomalous|abnormal|defective|normal|yes|no)\W*$|^\W*(?:yes|no)\s*[,.;:!-]"
)


def opens_with_yes_no(text: str) -> bool:
    return re.match(r"^\W*(?:yes|no)\b", text, re.IGNORECASE) is not None


def is_bare_verdict(text: str) -> bool:
    """A statement that is a verdict word ("Anomalous.", "Verdict: normal") or opens with Yes/No."""
    return _BARE_VERDICT.search(text) is not None


_VERDICT_WORDS = re.compile(
    r"\b(?:(?P<neg>not anomalous|non-anomalous|not defective|non-defective|normal|acceptable|a pass|passes|"
    r"good|ok|okay|fine|defect-free|anomaly-free|flawless|intact|unremarkable|negative)|"
    r"(?P<pos>not normal|abnormal|anomalous|an anomaly|defective|faulty|a fail|fails|rejected?|not acceptable|"
    r"unacceptable|positive|damaged))\b",
    re.IGNORECASE,
)


def stated_verdict_word(text: str) -> int | None:
    """In a conclusion without phrase cues, the last verdict word: +1 anomalous, -1 normal.

    A negation in the word's clause turns it round: "I do not consider it defective" is normal,
    "it should not be considered normal" anomalous.
    """
    last = None
    for match in _VERDICT_WORDS.finditer(text):
        last = 1 if match.group("pos") else -1
        if match.group(0).startswith(("not ", "non-")):
            continue  # the word carries its own negation
        if _NEGATION.search(_clause_prefix(text, match.start())):
            last = -last
    return last


# ------------------------------------------------------------------------------ leading word

_LABEL_PREFIX = re.compile(
    r"(?:[\s*#>_`\"'\-]+|(?:final\s+)?(?:answer|verdict|result|classification|assessment|decision|"
    r"conclusion|status|output|résultat|resultat|ergebnis|urteil|befund|risultato|resultado|veredicto|verdetto|"
    r"结论|结果|判定|結果)\s*[:：\-–—]\s*)",
    re.IGNORECASE,
)
_LEADING = re.compile(
    r"(not anomalous|non-anomalous|not defective|not normal|anomalous|abnormal|defective|normal|yes|no)\b",
    re.IGNORECASE,
)
_NOT_A_VERDICT_NEXT = re.compile(
    r"\s*(?:or|and|vs|versus|standards?|references?|samples?|images?|examples?|range|variation|wear|"
    r"operation|conditions?|parts?|items?|products?|units?|ones?|cases?|pieces?|would|should|must|can|may|will|"
    r"anomal\w*|defects?|findings?|abnormalit\w*|signs?|evidence|issues?|problems?|visible|obvious|significant|"
    r"apparent|clear|other|such|further|major|noticeable|discernible|detectable|damage|cracks?|scratch\w*|"
    r"sign|lesions?|mass(?:es)?|unusual|irregularit\w*|deviations?|concerns?|idea|"
    r"regions?|areas?|marks?|frames?|points?|objects?|people|persons?|one|activity|events?|pattern|spikes?|"
    r"indication)\b|\s*[/?]",
    re.IGNORECASE,
)


def leading_verdict(text: str, yes_means_anomalous: bool = True) -> tuple[bool | None, int]:
    """The verdict word the answer starts with (after labels/markdown) and its offset; (None, -1) if none.

    "Yes"/"No" only count when followed by punctuation ("No visible defects" goes to the phrases,
    "No idea" nowhere); they mean anomalous / normal for the product's question ("is it anomalous?");
    a verdict word followed by "or", "standards", "anomalies" etc. is not one.
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
    rest = text[match.end() :]
    if word in ("yes", "no"):
        if rest and not re.match(r"\s*(?:[.,;:!\-)]|$)", rest):
            return None, -1
        return (word == "yes") == yes_means_anomalous, match.start()
    if _NOT_A_VERDICT_NEXT.match(rest):
        return None, -1
    if word in ("anomalous", "abnormal", "defective"):
        # "Anomalous: no" is a key-value line, not the word "Anomalous" as a verdict.
        value = re.match(r"\s*[:=\-]\s*(yes|no|true|false)\b", rest, re.IGNORECASE)
        if value:
            return value.group(1).lower() in ("yes", "true"), match.start()
    return word not in ("normal", "not anomalous", "non-anomalous", "not defective"), match.start()


# -------------------------------------------------------------------------------- phrase cues

# What an anomaly is called: defects of parts, findings of scans, events of a scene, excursions of
# a signal. Words that also name normal features ("hole", "gap", "mark") count only in phrases
# that make them a defect ("a hole in the foil").
_MEDICAL_NOUN = (
    r"opacit(?:y|ies)|opacification|haziness|lucenc(?:y|ies)|consolidations?|crowding|elevation of|tortuos\w+|"
    r"(?:low|lower|decreased|reduced) lung volumes?|(?:degenerative|interstitial|chronic|postoperative|"
    r"post-surgical|fibrotic|emphysematous|inflammatory|cystic|ischemic|atrophic) changes|"
    r"infiltrat(?:es?|ion)|effusions?|fluid (?:in|collection|accumulation|around|within)|"
    r"pneumothorax|atelectasis|cardiomegaly|\b\w{1,20}megaly|edema|oedema|calcifications?|granulomas?|nodules?|"
    r"lesions?|mass(?:es)?|tumou?rs?|\b\w{3,20}omas?|metastas[ie]s|cancer|carcinoma|malignanc(?:y|ies)|"
    r"\b\w{4,20}itis|\b(?!diagn|progn|hypn)\w{4,20}osis|fractures?|ha?emorrhages?|hematomas?|haematomas?|bleed(?:ing)?|"
    r"infarcts?|infarction|isch(?:a)?emia|stenosis|aneurysms?|cysts?|polyps?|ulcers?|hernia|swelling|"
    r"inflammation|infection|pneumonia|fibrosis|emphysema|hyperexpansion|hyperinflation|enlargement|"
    r"thickening|blunting|curvature|deviation|displacement|dislocation|herniation|collapse|scarring|"
    r"(?:radiopaque|radio-opaque|foreign) (?:object|body|bodies|fragments?|densit(?:y|ies)|material)|"
    r"metallic (?:fragments?|densit(?:y|ies)|foreign \w+)"
)
_EVENT_NOUN = (
    r"fight(?:s|ing)?|brawl\w*|assaults?|attacks?|robber(?:y|ies)|theft|stealing|shoplifting|burglar(?:y|ies)|"
    r"vandalism|arson|explosions?|shootings?|gunfire|abuse|arrests?|accidents?|crash(?:es)?|collisions?|"
    r"fires?|smoke|abductions?|kidnapping|violence|intrusions?|trespass\w*|riots?|stampede|"
    r"jaywalking|congestion|traffic jams?|falls?"
)
_SIGNAL_NOUN = (
    r"spikes?|outliers?|surges?|level shifts?|change ?points?|shakes?|troughs?|"
    r"(?:sudden|abrupt|sharp|significant|unusual|dramatic|unexpected|anomalous) (?:drops?|dips?|jumps?|changes?|"
    r"increases?|decreases?|shifts?|peaks?|rises?|falls?|fluctuations?|variations?|spikes?|values?)"
)
DEFECT_NOUN = (
    r"(?:cracks?|scratch(?:es)?|dents?|defects?|anomal(?:y|ies)|abnormalit(?:y|ies)|stains?|smudges?|"
    r"blots?|blemish(?:es)?|smears?|streaks?|specks?|patch(?:es)? of|"
    r"spots?|marks? of|contamination|contaminants?|deformations?|deformit(?:y|ies)|corrosion|rust|"
    r"discolou?rations?|foreign (?:object|material|body|bodies|particles?|matter)|debris|dirt|dust|hairs?|"
    r"fibers?|fibres?|lint|residue|particles?|damage|flaws?|misalignments?|irregularit(?:y|ies)|breaks?|"
    r"breakage|notch(?:es)?|burrs?|chips?|chipping|bubbles?|blowholes?|pores?|porosity|fray(?:ing)?|"
    r"abrasions?|gouges?|gouging|bumps?|protrusions?|indentations?|pits?|pitting|punctures?|"
    r"(?:tears?|cuts?|holes?|gaps?|openings?) in|" + _MEDICAL_NOUN + "|" + _EVENT_NOUN + "|" + _SIGNAL_NOUN + "|"
    r"(?:damaged|broken|cracked|scratched|dented|bent|torn|chipped|missing|deformed|contaminated|frayed|"
    r"misplaced|misaligned|loose|extra|unusual|abnormal|anomalous|suspicious|enlarged|swollen|dilated|"
    r"widened|thickened|increased|elevated|patchy|hazy|irregular|edematous|erythematous|inflamed|hemorrhagic|"
    r"necrotic|ulcerated|infected|calcified|atrophic|sclerotic)\s+\w+)\b(?!-free)"
)
_DEFECT_CORE = DEFECT_NOUN[: -len(r")\b(?!-free)")]  # without the closing group and boundary, to extend
_QUANT = (
    r"(?:an?|one|two|three|four|several|some|multiple|many|visible|clear|clearly|obvious|noticeable|small|"
    r"large|significant|minor|major|distinct|deep|long|slight|tiny|little|few|numerous|evident|apparent|"
    r"possible|potential|\d+)"
)
# the rest of the sentence before the noun; a "." only inside a number ("a 1.5 cm lesion")
_WITHIN = r"\b(?:(?!\b(?:but|however|whereas|while|although|though|except)\b)[^.;]|\.(?=\d))*?\b"
_STATE_ADJ = (
    r"(?:defective|anomalous|abnormal|damaged|broken|cracked|scratched|dented|contaminated|deformed|"
    r"bent|torn|chipped|misaligned|faulty|frayed|missing|misplaced|loose|dirty|stained|corroded|"
    r"rusted|rusty|worn|punctured|unusual|irregular|incomplete|fractured|enlarged|swollen|flawed|"
    r"dilated|widened|thickened|displaced|collapsed|herniated|suspicious|hyperinflated|hyperexpanded|"
    r"exposed|smudged|smeared|warped|peeling|peeled|cloudy|illegible|misprinted|"
    r"elevated|tortuous|calcified|edematous|erythematous|inflamed|infected|blocked|obstructed)"
)
_SEEN = (
    r"(?:visible|present|detected|found|observed|seen|identified|noted|noticed|evident|apparent|spotted|"
    r"visuali[sz]ed|demonstrated|appreciated|shown|depicted|located|situated|there|stable|unchanged|"
    r"persistent|redemonstrated|again (?:seen|noted))"
)
ANOMALOUS_PHRASES = [
    re.compile(
        r"\bthere (?:is|are|was|were|appears? to be|seems? to be|might be|may be|could be|is also|"
        r"are also|exists?)\s+(?:[\w-]+,?\s+){0,5}?" + DEFECT_NOUN
    ),
    re.compile(
        r"\b(?:is|are|appears?|looks?|seems?|was|were|being|been|became|becomes?)\s+(?:to be\s+)?"
        r"(?:clearly\s+|visibly\s+|severely\s+|slightly\s+|partially\s+|partly\s+|somewhat\s+|"
        r"significantly\s+|very\s+|markedly\s+|mildly\s+|moderately\s+|also\s+)?" + _STATE_ADJ + r"\b"
    ),
    re.compile(
        r"\b(?:shows?|showing|shown|contains?|containing|has|have|had|having|exhibits?|exhibiting|reveals?|"
        r"revealing|displays?|displaying|presents?|demonstrates?|demonstrating|features?|depicts?|"
        r"depicting|mentions?|describes?|notes?|with)\s+(?:" + _QUANT + r"\b)?" + _WITHIN + DEFECT_NOUN
    ),
    re.compile(
        _DEFECT_CORE + r")\b(?!-free)\s+(?:[\w-]+\s+){0,3}?(?:is|are|was|were|has been|have been|can be|"
        r"could be)\s+(?:clearly\s+|also\s+|still\s+)?" + _SEEN + r"\b"
    ),
    re.compile(r"\b(?:is|are)\s+missing\b"),
    # an anomaly that happens: "a shake occurred between point 127 and point 150", "a crack appears near the rim"
    re.compile(
        _DEFECT_CORE + r")\b(?!-free)\s+(?:[\w-]+\s+){0,8}?(?:occur(?:s|red)?|happen(?:s|ed)?|emerge[sd]?|"
        r"appear(?:s|ed)?(?! to| as| normal)|develop(?:s|ed)?)\b"
    ),
    re.compile(
        r"\b(?:consistent with|compatible with|findings of|suggestive of|indicative of|evidence of|"
        r"signs? of|indicat(?:es?|ing)|suggest(?:s|ing)?|represent(?:s|ing)?|concerning for|"
        r"worrisome for)\s+(?:an?\s+)?(?:[\w-]+\s+){0,3}?" + DEFECT_NOUN
    ),
    re.compile(
        r"\b(?:impression|findings?)\s*:\s*(?!no\b|normal|unremarkable|negative)(?:[\w-]+\s+){0,3}?" + DEFECT_NOUN
    ),
    re.compile(
        r"\b(?:anomal(?:y|ies)|defects?|damage|cracks?|abnormalit(?:y|ies))\s+(?:detected|found|present|"
        r"identified|observed|noted)\b"
    ),
    re.compile(
        r"\b(?:anomal(?:y|ies)|defects?|abnormalit(?:y|ies))\s+(?:that\s+)?(?:i|we)\s+(?:have\s+)?"
        r"(?:detected|found|identified|observed|noticed|spotted|see)\b"
    ),
    # the anomaly described as a fact: "the anomaly is a scratch", "the defect appears to be a dent"
    re.compile(
        r"^(?:the |this |an? )?(?:main |primary |only )?(?:anomal(?:y|ies)|defects?|abnormalit(?:y|ies)|"
        r"anomalous (?:region|area|part|object|event|behaviou?r|activity))\s+(?:is|are|appears?|seems?|"
        r"can be|was|were|would be|lies|lie|located|here|in this|detected|observed|found)\b"
    ),
    re.compile(
        r"\b(?:the |an? )?(?:anomalous|abnormal|defective|damaged) (?:region|area|part|spot|portion|"
        r"section|object|event|behaviou?r|activity|segment|frames?|points?)\s+(?:is|are|was|were|"
        r"appears?|seems?|can be|located|occurs?|lies)\b"
    ),
    re.compile(r"\bunusual (?:activity|event|behaviou?r|object|movement|motion|pattern|action)\b"),
    re.compile(
        r"\b(?:an? |the )?anomal(?:y|ies) (?:at|in|on|near|around|between|from|during|within|occurs?|"
        r"occurred)\b"
    ),
    # "this stands out as an anomaly", "index 11 is an outlier"
    re.compile(
        r"\b(?:is|are|as|be|represents?|constitutes?)\s+(?:an?\s+|the\s+)?(?:clear\s+|likely\s+|"
        r"potential\s+|possible\s+|obvious\s+|real\s+|true\s+)?(?:anomal(?:y|ies)|outliers?|defects?|"
        r"abnormalit(?:y|ies))\b"
    ),
    re.compile(
        r"\bdeviat(?:es?|ing|ion)\s+(?:\w+\s+){0,2}?from\s+(?:the\s+)?(?:normal|general|expected|usual|"
        r"overall|typical|regular|established|reference|standard)\b"
    ),
    # a statement that opens with the finding itself (report style): "Patchy opacities in both lungs."
    # Only in statements without a finite verb (`_NOMINAL`): "The tissue texture appears ..." is not one.
    re.compile(
        r"^(?!.*\b(?:is|are|was|were|appears?|seems?|looks?|shows?|has|have|had|contains?|remains?|"
        r"demonstrates?|reveals?)\b)(?:(?:a|an|the|some|small|large|mild|moderate|severe|bilateral|patchy|diffuse|focal|"
        r"multiple|several|visible|new|subtle|marked|minimal|slight|possible|probable|likely|"
        r"right|left|upper|lower|\w+-sided|[\w-]+ly)\s+|[\w-]+,?\s+){0,4}?"
        + DEFECT_NOUN
        + r"(?!\s+(?:is|are|was|were)\s+(?:not|absent|unlikely))"
    ),
    # people doing what a surveillance preset calls an anomaly
    re.compile(
        r"\b(?:fighting|crashing|crashed|colliding|collided|attacking|stealing|shooting|assaulting|"
        r"robbing|vandali[sz]ing|brawling|punching|kicking|looting|trespassing|falling down|fell down)\b"
    ),
    re.compile(
        r"\b(?:people|person|man|woman|child|someone|somebody|object|pedestrian|worker|vehicle|car)s? "
        r"(?:is |are |was |were )?(?:falling|fall(?:s)? (?:to|on|onto) the (?:ground|floor)|"
        r"(?:struck|hit|run over|knocked down) by)\b"
    ),
    re.compile(
        r"\b(?:is|was|are|were|gets?|got) (?:struck|hit|run over|knocked down) by (?:a|an|the) "
        r"(?:vehicle|car|truck|bus|train|bike)\b"
    ),
]
_NORMAL_NOUN = (
    r"(?:defects?|anomal(?:y|ies|ous \w+)|abnormalit(?:y|ies)|damage|flaws?|issues?|problems?|"
    r"irregularit(?:y|ies)|deviations?|findings?|cracks?|scratch(?:es)?|contamination|lesions?|"
    r"spikes?|outliers?|drops?|dips?|concerns?|faults?|imperfections?|blemish(?:es)?|errors?|"
    r"(?:unusual|abnormal|suspicious|anomalous)(?: \w+)?|pathology|pathologies|pathological \w+|"
    r"(?:local |significant |notable |abrupt |sudden |unusual )?changes?|local (?:characteristics|features|"
    r"fluctuations)|"
    r"holes?|gaps?|"
    r"(?:signs?|evidence|indications?|traces?) of (?:\w+ )?" + DEFECT_NOUN + "|" + DEFECT_NOUN + ")"
)
NORMAL_PHRASES = [
    re.compile(r"\bno\s+(?:\w+[\s-]+){0,5}?" + _NORMAL_NOUN + r"\b"),
    re.compile(
        r"\b(?:appears?|looks?|seems?|is|are|was|were|remains?|being)\s+(?:to be\s+)?(?:completely\s+|"
        r"entirely\s+|perfectly\s+|fully\s+|totally\s+|generally\s+|overall\s+|essentially\s+|quite\s+|"
        r"grossly\s+|largely\s+|otherwise\s+|"
        r"relatively\s+|in\s+)?(?:normal|intact|defect[- ]free|flawless|undamaged|anomaly[- ]free|"
        r"unremarkable|in good (?:condition|shape|order)|within normal limits|without (?:any )?(?:defects|"
        r"anomalies|damage)|free of (?:any )?(?:defects|anomalies|damage)|acceptable|fine|ok|okay|"
        r"consistent with (?:the )?(?:normal|reference|expected)|as expected|regular|uniform|consistent|"
        r"clean|clear|perfect|good|healthy|typical|standard|complete|correct|properly \w+|well[- ]\w+|"
        r"midline|preserved)\b"
        r"(?<!that is correct)(?<!this is correct)(?<!that is right)"
    ),
    re.compile(
        r"\b(?:free|clear) (?:of|from)\s+(?:any\s+)?(?:significant\s+|obvious\s+)?"
        r"(?:visible\s+|obvious\s+|apparent\s+)?(?:defects?|anomal\w*|damage|"
        r"flaws?|abnormalit\w*|issues?|cracks?|scratch\w*|contamination)"
    ),
    re.compile(
        r"\bnothing\s+(?:\w+\s+){0,3}?(?:abnormal|anomalous|unusual|suspicious|out of the ordinary|wrong|"
        r"of note|irregular|out of place|amiss|concerning|strange|odd)\b"
    ),
    re.compile(r"\babsence of (?:any )?(?:\w+ )?(?:anomal\w*|defects?|abnormal\w*|damage)\b"),
    re.compile(r"\b(?:defect|anomaly|damage|flaw|blemish)[- ]free\b"),
    # report style: "Normal size of the cardiac silhouette.", "Normal hilar and mediastinal structures."
    re.compile(
        r"^(?:the |a )?normal\s+(?!or\b|and\b|vs\b|versus\b|standards?\b|references?\b|samples?\b|images?\b|"
        r"examples?\b|range\b|variations?\b|conditions?\b|wear\b)(?:[\w-]+\s+){0,4}?[\w-]+\b"
    ),
    re.compile(
        r"\b(?:is|are|appears? to be|seems? to be) (?:playing|running|working|operating|functioning|moving|"
        r"behaving|proceeding|flowing) (?:normally|as expected|smoothly)\b"
    ),
    re.compile(
        r"\b(?:within normal limits|unremarkable|nothing (?:abnormal|anomalous|unusual|suspicious|"
        r"out of the ordinary|wrong|of note|irregular)|normal (?:appearance|findings|study|pattern|behaviou?rs?|"
        r"activit(?:y|ies)|operation|conditions?|actions?|events?|scenes?|structures?)|"
        r"(?:contains?|shows?|depicts?|has) only (?:normal|routine|everyday|ordinary|typical)|"
        r"(?:no|nothing)\s+(?:\w+\s+)?(?:stands out|is wrong|is amiss))\b"
    ),
    re.compile(
        r"(?:can't|cannot|can not|do not|don't|did not|didn't|does not|doesn't|could not|couldn't|"
        r"fail to|failed to)\s+(?:see|find|detect|identify|observe|spot|notice|show|contain|have|exhibit|"
        r"reveal|display|indicate|present|seem to (?:have|contain|show|exhibit|be)|appear to (?:have|contain|"
        r"show|exhibit|be)|suggest|observe|notice)\s+(?:any\s+|an?\s+)?(?:\w+\s+){0,3}?" + _NORMAL_NOUN
    ),
    re.compile(
        r"(?:does not|doesn't|do not|don't|did not|didn't)\s+(?:appear|seem|look)\s+(?:to be\s+)?"
        r"(?:\w+\s+)?(?:defective|anomalous|abnormal|damaged|broken|faulty|unusual|out of place)"
    ),
    re.compile(r"\b(?:is|are)\s+not\s+(?:\w+\s+)?(?:anomalous|defective|abnormal|damaged|faulty)\b"),
    re.compile(r"\bnot (?:anomalous|defective|abnormal|damaged)\b"),
    re.compile(r"\bwithout\s+(?:any\s+)?(?:\w+\s+){0,2}?" + _NORMAL_NOUN + r"\b"),
    re.compile(r"\b(?:there (?:is|are)|i see|i found|i can see|we see)\s+nothing\b(?! but)"),
    re.compile(
        r"\b(?:matches|match|matching|consistent with|similar to|identical to|in line with|conforms? to|"
        r"meets?)\s+(?:the\s+|all\s+)?(?:normal|reference|expected|standard|specifications?|criteria|"
        r"requirements|good|defect-free)\b"
    ),
    re.compile(r"\bno(?:thing)?\s+(?:\w+\s+)?(?:out of the ordinary|amiss)\b"),
    re.compile(r"\b(?:no|nothing)\b[^.;]{0,60}?\bto (?:suggest|indicate)\b"),
]
_NEGATION = re.compile(
    r"\b(?:no|not|never|without|neither|nor|cannot|hardly|free of|absence of|rule[sd]? out|"
    r"lack of|lacks?|none|nothing|nobody|no one)\b|n't\b"
)
_PARTIAL = re.compile(
    r"\b(?:rest|otherwise|remaining|other|apart from|except|besides|aside from|elsewhere|surrounding|"
    r"majority|most of|in general|generally)\b"
)
CLAUSE_BREAK = re.compile(
    r"[,;:()]|\b(?:but|however|although|though|while|whereas|yet|except|apart from|"
    r"which|who)\b"
)
_CONTRAST = re.compile(r"\b(?:but|however|yet|although|though|even though|while|whereas|despite|except)\b")


def has_contrast(text: str) -> bool:
    return _CONTRAST.search(text) is not None


# "whether it is anomalous": a clause that names the verdict without stating it
_WHETHER = re.compile(r"\b(?:whether|if)\b[^,;.]*")
JSON_FRAGMENT = re.compile(r"\{\s*[\"']\w+[\"']\s*:")


@functools.lru_cache(maxsize=256)
def _breaks(pattern: re.Pattern[str], text: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]:
    """(starts, ends, words) of a statement's clause breaks, found once: every phrase asks for the
    clause it sits in, and scanning the prefix again for each would make long statements quadratic."""
    found = list(pattern.finditer(text))
    return tuple(m.start() for m in found), tuple(m.end() for m in found), tuple(m.group(0) for m in found)


def _last_break(pattern: re.Pattern[str], text: str, position: int) -> tuple[int, int, str] | None:
    starts, ends, words = _breaks(pattern, text)
    index = bisect.bisect_right(ends, position) - 1
    return (starts[index], ends[index], words[index]) if index >= 0 else None


def _clause_prefix(text: str, start: int) -> str:
    last = _last_break(CLAUSE_BREAK, text, start)
    return text[last[1] : start] if last else text[:start]


@dataclass(frozen=True)
class Cue:
    """One verdict phrase in a statement: +1 an anomaly is there, -1 nothing is; how hedged; and
    for "nothing is" whether it covers the whole item ("no defects", "the image looks normal") or
    one part of it ("the heart size is normal", "the cable is intact")."""

    polarity: int
    start: int
    end: int
    weight: float
    whole: bool = True


_REFERENCE_CLAUSE = re.compile(
    r"^\s*(?:in |on )?(?:the |both |all |each )?(?:normal |reference |template |good |"
    r"defect-free )+(?:images?|samples?|examples?|pictures?|photos?|ones?|parts?)\b"
)
_STAIN_TECHNIQUE = re.compile(
    r"\b(?:trichrome|h&e|hematoxylin|eosin|gram|giemsa|silver|masson|pas|immunohistochemical|"
    r"special|iron|congo red)\s+stain(?:s|ing)?\b|\bstain(?:ed|ing) with\b"
)
# a list carries its negation: "no masses, discolorations, or other abnormalities are apparent"
_LIST_CONTINUATION = re.compile(r"^\s*(?:(?:and|or|nor)\s+)?(?:[\w-]+(?:\s+|$)){0,3}$")


def _negated_list_item(text: str, start: int) -> bool:
    """Whether a phrase is an item of a list whose head is negated ("no A, B or C")."""
    position = start
    for _ in range(6):
        last = _last_break(CLAUSE_BREAK, text, position)
        if last is None:
            return False
        break_start, break_end, word = last
        if word != "," or not _LIST_CONTINUATION.match(text[break_end:position]):
            return False
        if _NEGATION.search(_clause_prefix(text, break_start)):
            return True
        position = break_start
    return False


def cue_spans(text: str) -> list[Cue]:
    """Every un-negated anomaly and normal phrase of a statement, in order."""
    text = _WHETHER.sub(lambda m: " " * len(m.group(0)), text)
    text = _STAIN_TECHNIQUE.sub(lambda m: " " * len(m.group(0)), text)
    found: list[Cue] = []
    taken: list[tuple[int, int]] = []
    for pattern in NORMAL_PHRASES:  # first: "no defects" must not also count as "defects"
        for match in pattern.finditer(text):
            prefix = _clause_prefix(text, match.start())
            negated = _NEGATION.search(prefix) and not match.group(0).startswith(("no", "not", "free", "with"))
            if negated or _PARTIAL.search(prefix) or _PARTIAL.search(match.group(0)):
                continue
            if any(a <= match.start() < b for a, b in taken):
                continue
            found.append(Cue(-1, match.start(), match.end(), _clause_hedge(text, match), _covers_whole(text, match)))
            taken.append(match.span())
    for pattern in ANOMALOUS_PHRASES:
        for match in pattern.finditer(text):
            if any(a <= match.start() < b or match.start() <= a < match.end() for a, b in taken):
                continue
            if _NEGATION.search(_clause_prefix(text, match.start()) + match.group(0)):
                continue
            if _negated_list_item(text, match.start()):
                continue
            found.append(Cue(1, match.start(), match.end(), _clause_hedge(text, match)))
            taken.append(match.span())
    # "The reference image shows a scratch, but the test image ...": a clause about the reference
    found = [c for c in found if not _REFERENCE_CLAUSE.match(_clause_prefix(text, c.start))]
    return sorted(found, key=lambda cue: cue.start)


def _clause_hedge(text: str, match: re.Match[str]) -> float:
    """The hedge that governs a phrase: words of its own clause up to the phrase's end.

    "There is a hazy opacity, which could represent atelectasis" states the opacity plainly;
    the hedge belongs to the interpretation after the comma.
    """
    return hedge_weight(_hedge_clause(text, match.start()) + match.group(0))


def _hedge_clause(text: str, start: int) -> str:
    last = _last_break(_HEDGE_BREAK, text, start)
    return text[last[1] : start] if last else text[:start]


def _covers_whole(text: str, match: re.Match[str]) -> bool:
    """Whether a normal phrase speaks of the whole item rather than one part of it.

    "No acute cardiopulmonary abnormality" and "no osseous abnormality" are restricted to a kind
    or a part: a report that says so and names a chronic finding is not a normal report.
    """
    phrase = match.group(0)
    if _RESTRICTED.search(phrase):
        return False
    if _GENERIC_ANOMALY_NOUN.search(phrase):
        return True
    subject = _clause_prefix(text, match.start())
    return _WHOLE_SUBJECT.search(subject) is not None


_HEDGE_BREAK = re.compile(r"[,;:()]|\b(?:but|however|although|though|whereas|which|who|and)\b")
# nouns that name any anomaly at all: "no anomalies" covers the whole item, "no fracture" one kind
_RESTRICTED = re.compile(
    r"\b(?:acute|new|focal|osseous|bony|skeletal|cardiopulmonary|pulmonary|cardiac|intracranial|gross|"
    r"additional|further|other|structural|surface|visible structural)\b"
)
_GENERIC_ANOMALY_NOUN = re.compile(
    r"\b(?:defects?|anomal\w*|abnormalit\w*|issues?|problems?|irregularit\w*|deviations?|flaws?|faults?|"
    r"imperfections?|concerns?|damage|unusual|abnormal|suspicious|anything|nothing|acute|patholog\w*|"
    r"out of the ordinary|findings?|signs? of (?:damage|defects?|anomal\w*|wear)|defect[- ]free|anomaly[- ]free|"
    r"flawless|undamaged|matches|match|matching|conforms?|meets?|specifications?|expected)\b"
)
_WHOLE_SUBJECT = re.compile(
    r"^\s*(?:overall,?\s*)?(?:it|this|everything|all|(?:the|this) (?:whole |entire |overall )?(?:image|picture|"
    r"photo|item|object|product|part|sample|piece|unit|scene|video|clip|footage|frames?|series|signal|data|"
    r"time series|study|scan|x-ray|radiograph|exam|case|specimen|surface|tile|material|board|device|"
    r"test (?:item|image|sample|part|object|piece)|query (?:image|item)|"
    r"inspected \w+|\w+ (?:under inspection|being inspected))|(?:the|this) \w+ (?:in|of) (?:the|this) "
    r"(?:image|picture|photo))\b(?:\s+(?:itself|overall|as a whole|in general))?\s*(?:also\s+)?$"
)


def contrast_side(text: str, spans: list[Cue] | None = None) -> int | None:
    """A statement with cues both ways: the side of its main clause after a contrast, if clear.

    "The surface is clean, but there is a dent" → +1; "Although there is a faint mark, the part is
    normal" and "The part is normal, although there is a faint mark" → -1 (the main clause decides,
    wherever the subordinate one stands).
    """
    spans = cue_spans(text) if spans is None else spans
    contrast = None
    for match in _CONTRAST.finditer(text):
        contrast = match
    if contrast is None:
        return None
    if contrast.group(0) in ("although", "though", "even though", "while", "whereas", "despite"):
        if not any(c.start < contrast.start() for c in spans):  # subordinate clause first: main after its comma
            comma = text.find(",", contrast.end())
            main = {c.polarity for c in spans if c.start >= (comma if comma != -1 else contrast.end())}
        else:  # "The part is normal, although the background has a stain": the main clause comes first
            main = {c.polarity for c in spans if c.start < contrast.start()}
    else:
        main = {c.polarity for c in spans if c.start >= contrast.end()}
    return main.pop() if len(main) == 1 else None


# -------------------------------------------------------------------------------- keyed verdicts

# "Label: Normal", "Labels: Fighting, Assault", "Anomaly detected: yes", "Presence of anomaly points: No"
_KEYED_CLASS = re.compile(
    r"\b(?:labels?|class(?:ification)?|category|prediction|predicted (?:class|label)|"
    r"result|status|verdict|answer|decision|outcome)\s*[:=|]\s*(?P<value>[^;|\n]{1,60})"
)
_KEYED_FLAG = re.compile(
    r"\b(?:(?:presence of |is there (?:an? |any )?)?(?:anomal\w*|defects?|abnormal\w*|"
    r"anomaly detected|defect detected)(?: \w+){0,2})\s*[:=]\s*(?P<value>yes|no|true|false|"
    r"present|absent|none|detected|not detected)\b"
)
_NORMAL_CLASS = re.compile(
    r"^\W*(?:normal|none|no anomal\w*|no defects?|ok|good|pass(?:ed)?|negative|"
    r"non-anomalous|not anomalous|defect-free|nothing)\b(?!\s*(?:and|or|but|with)\b)"
)
_ANOMALY_CLASS = re.compile(
    r"^\W*(?:(?:anomal\w*|abnormal|defective|bad|fail(?:ed)?|reject(?:ed)?|positive|"
    + _EVENT_NOUN
    + r"|"
    + r"road \w+|armed \w+|[\w ]*(?:fight|assault|robber|accident|"
    r"abuse|arrest|shoot|theft|burglar|vandal|explosion|arson|steal)\w*)[\W\w]*)$"
)


_UNDECIDED_CLASS = re.compile(
    r"^\W*(?:uncertain|undetermined|indeterminate|unknown|unclear|inconclusive|review|"
    r"needs? review|cannot (?:be )?determined?|not determined|n/?a|undecided)\b"
)
_BRACKET_CLASS = re.compile(
    r"^\W*\[(?P<value>[^\]\d][^\]]{1,40})\]\s*(?::|-|$)"
    r"|^\W*(?P<bare>[a-z][a-z ]{2,30}?)\s+-\s(?!\s*(?:very\s+|moderately\s+)?(?:low|high|"
    r"medium|mid|none|moderate|likely|unlikely)\b)"
)  # "Road Accidents - all images show it"


def key_value_verdict(text: str) -> int | None:
    """A verdict given as a key and value: +1 anomalous, -1 normal, None when there is none."""
    bracket = _BRACKET_CLASS.match(text)  # "[Assault]: physical attack ...", "[Normal]: routine activity"
    if bracket:
        value = (bracket.group("value") or bracket.group("bare")).strip().lower()
        if _NORMAL_CLASS.match(value):
            return -1
        if _ANOMALY_CLASS.match(value):
            return 1
    flag = _KEYED_FLAG.search(text)
    if flag:
        return 1 if flag.group("value") in ("yes", "true", "present", "detected") else -1
    for match in _KEYED_CLASS.finditer(text):
        # "Labels: Fighting, Assault" is one verdict; "Labels: Normal. Road Accidents" states both
        classes = [c.strip() for c in re.split(r"[.,/;]|\band\b|\s-\s", match.group("value").lower()) if c.strip()]
        if not classes:
            continue
        kinds = set()
        for value in classes[:4]:
            if _NORMAL_CLASS.match(value):
                kinds.add(-1)
            elif _ANOMALY_CLASS.match(value) and not re.match(r"^\W*(?:no|not|non)\b", value):
                kinds.add(1)
        if _NORMAL_CLASS.match(classes[0]) or _ANOMALY_CLASS.match(classes[0]):
            return kinds.pop() if len(kinds) == 1 else 0
        if _UNDECIDED_CLASS.match(classes[0]):  # "Verdict: uncertain", "Result: REVIEW"
            return 0
    return None
