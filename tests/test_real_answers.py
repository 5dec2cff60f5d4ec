"""The real-answer corpus (tests/answers/real_answers.json) and the reader's figures on its dev split.

The corpus holds answers that models wrote, copied from public sources; the split is fixed by a
hash of each text (scripts/build_answer_corpus.py). The reader is tuned on "dev"; the held-out
figures are printed by benchmarks/answers.py and deliberately not asserted here, so that a failing
test can never pull the rules towards the held-out answers.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from benchmarks.answers import mark_figures, range_figures, verdict_figures
from inspector.vlm.answers import parse_answer

CORPUS = json.loads((Path(__file__).parent / "answers" / "real_answers.json").read_text(encoding="utf-8"))
ANSWERS = CORPUS["answers"]


def test_every_answer_cites_a_source_and_none_comes_from_the_excluded_study():
    sources = CORPUS["sources"]
    for answer in ANSWERS:
        source = sources[answer["source"]]
        assert source.get("repo") or source.get("url") or source.get("title"), answer["source"]
        assert "caoyunkang" not in json.dumps(source).lower()
        assert answer["states"] in ("anomalous", "normal", "none", "n/a")
    assert len({a["text"].strip() for a in ANSWERS}) == len(ANSWERS)  # no duplicates


def test_the_split_is_the_hash_rule():
    for answer in ANSWERS:
        first = hashlib.sha256(answer["text"].strip().encode("utf-8")).hexdigest()[0]
        assert answer["split"] == ("heldout" if first in "01234567" else "dev")


def test_the_corpus_is_broad_enough_to_mean_something():
    verdicts = [a for a in ANSWERS if a["states"] in ("anomalous", "normal", "none")]
    assert len(verdicts) >= 250
    assert len({a["source"].split(":")[0] for a in ANSWERS}) >= 20
    domains = Counter(a["domain"] for a in verdicts)
    assert {"industrial", "medical", "video", "timeseries"} <= set(domains)
    assert Counter(a["states"] for a in verdicts)["none"] >= 30  # answers that state nothing


def test_dev_split_figures():
    dev = [a for a in ANSWERS if a["split"] == "dev"]
    verdicts = verdict_figures(dev)
    # regression guards at the measured dev level (benchmarks/answers.py prints the figures); the
    # reader leaves part-by-part descriptions it cannot read fully unparsed rather than guess "normal"
    assert verdicts["agreement"] >= 0.88, verdicts["misses"][:5]
    assert verdicts["guesses"] <= 5
    assert verdicts["unparsed"] <= 0.11
    assert mark_figures(dev)["read"] >= 0.45
    assert range_figures(dev)["read"] >= 0.45


def test_an_unread_answer_never_carries_a_score_or_a_location():
    for answer in ANSWERS:
        parsed = parse_answer(answer["text"])
        if parsed.anomalous is None:
            assert parsed.score is None and not parsed.regions, answer["text"][:80]
