"""The answer parser: realistic model answers, and the rule "anything unclear stays UNPARSED"."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from inspector.model import ParseStatus, ScoreSource
from inspector.vlm.answers import logprob_p_anomalous, parse_answer
from tests.loopback_vlm import _logprobs

# (answer, expected verdict); None means it must stay UNPARSED.
ANSWERS: list[tuple[str, bool | None]] = [
    # JSON, as asked
    (
        '{"anomalous": true, "confidence": 0.86, "reason": "A crack runs across the rim.", '
        '"regions": [{"box": [10, 20, 60, 80], "label": "crack"}]}',
        True,
    ),
    ('{"anomalous": false, "confidence": 0.95, "reason": "The bottle matches the references.", "regions": []}', False),
    ('```json\n{"anomalous": true, "confidence": 0.7, "reason": "Scratch near the top."}\n```', True),
    (
        'Here is my assessment:\n```json\n{\n  "anomalous": false,\n  "confidence": 0.9,\n  "reason": "No '
        'defects."\n}\n```\nLet me know if you need more detail.',
        False,
    ),
    (
        'After comparing with the reference image, my verdict is {"anomalous": true, "confidence": 0.6, '
        '"reason": "Missing screw at the lower left."} as requested.',
        True,
    ),
    ('{"anomalous": "yes", "confidence": "80%", "reason": "Dent on the side."}', True),
    ('{"anomalous": "Normal", "reason": "All good."}', False),
    ("{'anomalous': True, 'confidence': 0.75, 'reason': 'stain on the label'}", True),
    ('{"result": {"anomalous": false, "confidence": 0.8}}', False),
    ('{"Anomalous": true, "Confidence": 0.9}', True),
    ('{"anomalous": 1, "confidence": 0.55}', True),
    # JSON we must not guess from
    ('{"anomalous": "uncertain", "confidence": 0.5, "reason": "Image too blurry."}', None),
    ('{"anomalous": null, "reason": "Cannot judge."}', None),
    ('{"reason": "There is a crack on the rim.", "confidence": 0.8}', None),
    ('{"anomalous": true, "reason": "view 1"} {"anomalous": false, "reason": "view 2"}', None),
    ('{"anomalous": 0.7}', None),
    # Free text with the leading word the prompt asks for
    ("Anomalous. There is a thin crack along the neck of the bottle.", True),
    ("Normal. The surface is uniform and the print is complete.", False),
    ("**Verdict:** Anomalous — the capsule is dented on the left side.", True),
    ("Answer: Normal", False),
    ("Yes, there is a scratch near the centre of the tile.", True),
    ("No. The part matches the normal standards.", False),
    ("Not anomalous; the weave pattern is regular.", False),
    ("Anomalous: no", False),
    # Free text with clear phrases
    ("No visible defects were found on the screw.", False),
    ("The hazelnut appears normal and matches the reference.", False),
    ("There is a crack running from the top edge to the middle of the tile.", True),
    ("I don't see any defects on this PCB.", False),
    ("The bottle does not appear to be damaged.", False),
    ("The image shows a metal nut without any visible defects.", False),
    ("There is a crack on the neck; the rest of the bottle appears normal.", True),
    ("The zipper has a broken tooth in the middle.", True),
    ("Chest X-ray: no acute findings; the lungs are clear. Unremarkable study.", False),
    ("There is a 2 cm nodule in the right upper lobe.", True),
    # Negations, hedges, refusals and nonsense: never guessed
    ("I don't think there is a crack, but I am not sure.", None),
    ("There might be a small scratch, but it could also be a reflection.", None),
    ("It is hard to say whether this is a defect or part of the texture.", None),
    ("The part is likely defective.", None),
    ("I can't help with that.", None),
    ("I'm sorry, but I cannot analyze medical images.", None),
    ("I'm unable to determine whether the item is anomalous from this image.", None),
    ("No image was provided.", None),
    ("No, I can't help with that.", None),
    ("Normal. I cannot tell what caused the faint shading, but it is within the allowed variation.", False),
    ("As an AI, I cannot make this judgement.", None),
    ("No idea.", None),
    ("Normal or anomalous: it depends on the tolerance.", None),
    ("Normal standards say the rim must be round. The image shows a round rim.", None),
    ("The cable looks fine overall. There is a cut in the insulation.", True),
    # the clause after "but" is the finding (issue 10: real answers state verdicts this way)
    ("The capsule appears intact, but there is a dent on the cap.", True),
    ("", None),
    ("   ", None),
    ("The lighting in this image is quite dark.", None),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_realistic_answers(answer: str, expected: bool | None) -> None:
    parsed = parse_answer(answer)
    if expected is None:
        assert parsed.status == ParseStatus.UNPARSED, parsed
        assert parsed.anomalous is None
        assert parsed.score is None and parsed.score_source == ScoreSource.NONE
    else:
        assert parsed.status == ParseStatus.PARSED, parsed
        assert parsed.anomalous is expected


def test_there_are_enough_cases() -> None:
    assert len(ANSWERS) >= 30
    assert sum(expected is None for _, expected in ANSWERS) >= 10


def test_json_fields_are_read() -> None:
    parsed = parse_answer(
        '{"anomalous": true, "confidence": 0.86, "reason": " A crack. ", '
        '"regions": [{"box": [1, 2, 3, 4], "label": "crack"}, [5, 6, 7, 8], 3, "junk"]}'
    )
    assert parsed.method == "json"
    assert parsed.confidence == pytest.approx(0.86)
    assert parsed.explanation == "A crack."
    assert parsed.regions == [{"box": [1, 2, 3, 4], "label": "crack"}, {"box": [5.0, 6.0, 7.0, 8.0]}, {"mark": 3}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"anomalous": true, "confidence": 0.8}', 0.8),
        ('{"anomalous": false, "confidence": 0.8}', pytest.approx(0.2)),
        ('{"anomalous": true, "confidence": 85}', 0.85),
        ('{"anomalous": false, "confidence": "90%"}', pytest.approx(0.1)),
    ],
)
def test_stated_confidence_becomes_p_anomalous(raw: str, expected: float) -> None:
    parsed = parse_answer(raw)
    assert parsed.score_source == ScoreSource.STATED_CONFIDENCE
    assert parsed.score == expected


@pytest.mark.parametrize(
    "raw",
    [
        '{"anomalous": true, "confidence": "high"}',
        '{"anomalous": true}',
        '{"anomalous": true, "confidence": 250}',
        "Anomalous.",
    ],
)
def test_no_score_without_confidence_or_logprobs(raw: str) -> None:
    parsed = parse_answer(raw)
    assert parsed.parsed
    assert parsed.confidence is None
    assert parsed.score is None and parsed.score_source == ScoreSource.NONE


def _token(token: str, logprob: float, top: list[tuple[str, float]]) -> dict:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
    }


def test_logprob_score_from_json_value_token() -> None:
    raw = '{"anomalous": true, "confidence": 0.9}'
    tokens = [
        _token('{"', -0.01, []),
        _token("anomal", -0.01, []),
        _token("ous", -0.01, []),
        _token('":', -0.01, []),
        _token(
            " true",
            math.log(0.6),
            [(" true", math.log(0.6)), (" false", math.log(0.3)), ("true", math.log(0.06)), (" null", math.log(0.02))],
        ),
        _token(",", -0.01, []),
        _token(' "', -0.01, []),
        _token("confidence", -0.01, []),
        _token('":', -0.01, []),
        _token(" 0", -0.1, []),
        _token(".9", -0.1, []),
        _token("}", -0.01, []),
    ]
    parsed = parse_answer(raw, tokens)
    assert parsed.score_source == ScoreSource.LOGPROB
    # renormalised over the true/false variants: (0.6 + 0.06) / (0.6 + 0.06 + 0.3)
    assert parsed.score == pytest.approx(0.66 / 0.96)
    # the OpenAI `logprobs` object (with "content") is accepted as well
    assert parse_answer(raw, {"content": tokens}).score == pytest.approx(0.66 / 0.96)


def test_logprob_score_from_leading_word_split_into_tokens() -> None:
    raw = "Normal. The surface is clean."
    tokens = [
        _token("Normal", math.log(0.7), [("Normal", math.log(0.7)), ("An", math.log(0.2)), ("The", math.log(0.05))]),
        _token(".", -0.01, []),
        _token(" The surface is clean.", -0.5, []),
    ]
    parsed = parse_answer(raw, tokens)
    assert parsed.anomalous is False
    assert parsed.score_source == ScoreSource.LOGPROB
    assert parsed.score == pytest.approx(0.2 / 0.9)


def test_logprob_without_alternatives_uses_the_chosen_probability() -> None:
    tokens = [_token("Anomalous", math.log(0.8), []), _token(".", 0.0, [])]
    parsed = parse_answer("Anomalous.", tokens)
    assert parsed.score == pytest.approx(0.8)
    assert parsed.score_source == ScoreSource.LOGPROB


def test_logprobs_that_do_not_match_fall_back_to_confidence() -> None:
    tokens = [_token("Hello", -0.1, [])]
    parsed = parse_answer('{"anomalous": false, "confidence": 0.7}', tokens)
    assert parsed.score_source == ScoreSource.STATED_CONFIDENCE
    assert parsed.score == pytest.approx(0.3)


def test_unparsed_answers_get_no_score_even_with_logprobs() -> None:
    raw = "I can't help with that."
    parsed = parse_answer(raw, _logprobs(raw, 0.9, 5))
    assert parsed.status == ParseStatus.UNPARSED and parsed.score is None


@pytest.mark.parametrize("p", [0.05, 0.5, 0.93])
def test_loopback_logprobs_round_trip(p: float) -> None:
    for raw in (
        '{"anomalous": true, "confidence": 0.8, "reason": "Normal wear is not it."}',
        '{"anomalous": false, "confidence": 0.8}',
        "Anomalous. A dent.",
        "Normal.",
    ):
        parsed = parse_answer(raw, _logprobs(raw, p, 5))
        assert parsed.score_source == ScoreSource.LOGPROB, raw
        assert parsed.score == pytest.approx(p, abs=1e-6), raw


def test_logprob_helper_needs_matching_polarity() -> None:
    tokens = [_token("Normal", math.log(0.9), [])]
    assert logprob_p_anomalous(tokens, "text", anomalous=True) is None


# ---------------------------------------------------------------------------------------------
# The free-text corpus (issue 4, "Answers"): answers written by us in the ways models phrase
# verdicts, each with its expected verdict (None: must stay UNPARSED) and a phrasing family.
# ---------------------------------------------------------------------------------------------

CORPUS_PATH = Path(__file__).with_name("answer_corpus.json")
CORPUS: list[dict] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))


def _corpus_results() -> list[tuple[dict, bool | None]]:
    return [(item, parse_answer(item["text"]).anomalous) for item in CORPUS]


def per_family_accuracy() -> dict[str, tuple[int, int]]:
    """{family: (right, total)} over the corpus."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item, verdict in _corpus_results():
        table[item["family"]][0] += verdict is item["expected"]
        table[item["family"]][1] += 1
    return {family: (right, total) for family, (right, total) in sorted(table.items())}


def corpus_report() -> str:
    rows = per_family_accuracy()
    right = sum(r for r, _ in rows.values())
    lines = [f"{family:20s} {r:3d}/{n:<3d} {r / n:6.1%}" for family, (r, n) in rows.items()]
    return "\n".join([*lines, f"{'overall':20s} {right:3d}/{len(CORPUS):<3d} {right / len(CORPUS):6.1%}"])


def test_corpus_is_well_formed() -> None:
    assert len(CORPUS) >= 100
    for item in CORPUS:
        assert set(item) == {"text", "expected", "family", "note"}, item
        assert item["expected"] in (True, False, None), item
    counts = Counter(item["family"] for item in CORPUS)
    assert min(counts.values()) >= 3, counts
    assert sum(item["expected"] is None for item in CORPUS) >= 20


def test_corpus_accuracy() -> None:
    results = _corpus_results()
    wrong = [
        (item["family"], item["text"][:60], item["expected"], got)
        for item, got in results
        if got is not item["expected"]
    ]
    accuracy = 1 - len(wrong) / len(results)
    print("\n" + corpus_report())
    assert accuracy >= 0.97, f"accuracy {accuracy:.3f} on {len(results)} answers; wrong: {wrong}"


def test_corpus_never_turns_an_unreadable_answer_into_a_verdict() -> None:
    guessed = []
    for item in CORPUS:
        if item["expected"] is None:
            parsed = parse_answer(item["text"])
            if parsed.status != ParseStatus.UNPARSED or parsed.anomalous is not None or parsed.score is not None:
                guessed.append((item["family"], item["text"], parsed.anomalous))
    assert guessed == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Das Teil ist nicht defekt.", False),  # negation masks the bare "defekt"
        ("Nicht in Ordnung.", True),  # negated normal
        ("Non è normale.", True),  # Italian negation before the French "normale"
        ("Il pezzo è normale.", False),
        ("La pièce n'est pas défectueuse.", False),
        ("No se observan defectos.", False),
        ("没有缺陷", False),  # "no defect" contains no verdict word of its own
        ("不正常", True),
        ("異常は見られません。", False),  # Japanese negation comes after the noun
        ("正常ではありません。", True),
        ("Forse anomalo.", None),  # hedges in other languages
        ("可能异常", None),
        ("Je ne peux pas analyser cette image.", None),  # refusals in other languages
    ],
)
def test_other_languages_and_their_negations(answer: str, expected: bool | None) -> None:
    assert parse_answer(answer).anomalous is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Normal, probably, but the edge is unclear.", None),  # hedged leading word
        ("Normal. Looking closer, there is a crack. Verdict: anomalous.", None),  # stated both ways
        ("Anomalous samples have burrs. This one has none, so it is normal.", False),
        ("The rim has a notch. Final verdict: anomalous.", True),
        ("| Item | Verdict |\n|---|---|\n| Verdict | Normal |", False),
        ("Frames 10-40 show a person climbing the fence. Anomalous.", True),
        ('{"anomalous": false, "reason": "no defects, the surface is', None),  # cut-off JSON: no guessing
        ("Not normal: the label is missing.", True),
    ],
)
def test_stated_verdicts_and_conclusions(answer: str, expected: bool | None) -> None:
    assert parse_answer(answer).anomalous is expected


if __name__ == "__main__":  # python -m tests.test_answers: accuracy per phrasing family
    print(corpus_report())


def test_logprob_score_from_the_verdict_word_of_a_conclusion() -> None:
    """A description first, the verdict last: the score comes from the concluding verdict token."""
    raw = "The tile shows a long dark line from the left edge.\n\nVerdict: anomalous"
    parsed = parse_answer(raw, _logprobs(raw, 0.8, 5))
    assert parsed.anomalous is True
    assert parsed.score_source == ScoreSource.LOGPROB and parsed.score == pytest.approx(0.8)
    tagged = "<think>a scratch on the flange</think><answer>Yes</answer>"
    tokens = [
        _token("<think>a scratch on the flange</think><answer>", -0.01, []),
        _token("Yes", math.log(0.7), [("Yes", math.log(0.7)), ("No", math.log(0.3))]),
        _token("</answer>", -0.01, []),
    ]
    parsed = parse_answer(tagged, tokens)
    assert parsed.anomalous is True and parsed.score == pytest.approx(0.7)
    # a finding without a verdict word has no verdict token: no logprob score is made up
    finding = "There is a long scratch across the flange."
    parsed = parse_answer(finding, _logprobs(finding, 0.8, 5))
    assert parsed.anomalous is True and parsed.score is None and parsed.score_source == ScoreSource.NONE


@pytest.mark.parametrize(
    "text",
    [
        "[" * 60_000,
        "{" * 5_000 + "}" * 5_000,
        "<answer>" * 20_000,
        "\\boxed{" * 20_000,
        "\n" * 100_000,
        "{'a': {'b': " * 3_000,
    ],
)
def test_degenerate_answers_are_unparsed_not_a_crash(text: str) -> None:
    """A model stuck in a loop, or a broken server, must not take the reader down (timings: the
    benchmark `benchmarks/answers.py` prints the slowest)."""
    parsed = parse_answer(text)
    assert parsed.status == ParseStatus.UNPARSED and parsed.score is None


def test_a_runaway_answer_is_read_by_its_opening_and_its_conclusion() -> None:
    filler = "The surface texture continues in the same way. " * 5_000  # 240 KB
    parsed = parse_answer("Looking at the part in detail.\n" + filler + "\nVerdict: anomalous, a crack at the rim.")
    assert parsed.anomalous is True
    assert parsed.explanation.endswith("crack at the rim.")  # the explanation is the answer as written
