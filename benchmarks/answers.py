"""How well the answer reader reads real model answers: verdicts and Set-of-Mark mark numbers.

    .venv/bin/python benchmarks/answers.py            # figures on both splits
    .venv/bin/python benchmarks/answers.py --list     # and the dev split's misses, with the reader's basis

The corpus (tests/answers/real_answers.json) holds answers that models wrote, copied from public
sources, labelled by what each answer states. Figures per split:

* agreement: the reader's outcome (anomalous / normal / unparsed) equals the label, over all
  verdict answers (an answer that states no verdict agrees when it stays unparsed);
* guesses: a verdict where the answer states none, or the opposite verdict (must be 0);
* unparsed: answers that state a verdict but were left unparsed, as a share of those;
* marks read: Set-of-Mark answers whose selected mark numbers equal the labelled ones;
* ranges read: answers with labelled frame/sample ranges whose ranges are all read, as written.

The reader is tuned on "dev" only; "heldout" is the honest figure. Misses are listed for dev only,
so that reading the list while tuning cannot leak the held-out answers into the rules.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inspector.localization.mark_answers import parse_mark_answer  # noqa: E402
from inspector.vlm.answers import parse_answer  # noqa: E402
from inspector.vlm.prose import read_prose  # noqa: E402

CORPUS = ROOT / "tests" / "answers" / "real_answers.json"
OWN_CORPUS = ROOT / "tests" / "answer_corpus.json"
VERDICTS = ("anomalous", "normal", "none")


def load(path: Path = CORPUS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def outcome(text: str) -> str:
    parsed = parse_answer(text)
    if parsed.anomalous is None:
        return "none"
    return "anomalous" if parsed.anomalous else "normal"


def valid_marks(entry: dict) -> list[int]:
    """The numbers drawn on the image, as far as the answer lets us know (else 1-99)."""
    named = (
        set(entry.get("marks_mentioned") or []) | set(entry.get("marks") or []) | set(entry.get("marks_normal") or [])
    )
    return sorted(named) if named else list(range(1, 100))


def verdict_figures(entries: list[dict]) -> dict:
    rows = [e for e in entries if e["states"] in VERDICTS]
    agree = guesses = unparsed = stated = 0
    misses = []
    for e in rows:
        got = outcome(e["text"])
        if e["states"] != "none":
            stated += 1
            unparsed += got == "none"
        if got == e["states"]:
            agree += 1
        else:
            if got != "none":
                guesses += 1
            misses.append((e, got))
    return {
        "n": len(rows),
        "agreement": agree / len(rows) if rows else float("nan"),
        "guesses": guesses,
        "unparsed": unparsed / stated if stated else float("nan"),
        "stated": stated,
        "unparsed_n": unparsed,
        "misses": misses,
    }


def mark_figures(entries: list[dict]) -> dict:
    rows = [e for e in entries if "marks" in e]
    read = 0
    misses = []
    for e in rows:
        answer = parse_mark_answer(e["text"], valid_marks(e))
        if sorted(answer.selected) == sorted(e["marks"]):
            read += 1
        else:
            misses.append((e, answer.selected))
    return {"n": len(rows), "read": read / len(rows) if rows else float("nan"), "misses": misses}


def _range_key(value) -> str:
    """A range end compared as its digits: "1.1 seconds" and 1.1 are the same end."""
    text = str(value)
    return re.sub(r"[^\d.:\-]", "", text) if re.search(r"\d", text) else text.strip().lower()


def range_figures(entries: list[dict]) -> dict:
    """Answers with labelled ranges whose ranges are all read (as written, in any order)."""
    rows = [e for e in entries if e.get("ranges")]
    read = 0
    misses = []
    for e in rows:
        got = {tuple(_range_key(v) for v in r["range"]) for r in parse_answer(e["text"]).regions if "range" in r}
        want = {tuple(_range_key(v) for v in r) for r in e["ranges"]}
        if got == want:
            read += 1
        else:
            misses.append((e, sorted(got)))
    return {"n": len(rows), "read": read / len(rows) if rows else float("nan"), "misses": misses}


DEGENERATE = {  # what a model stuck in a loop, or a broken server, can send
    "100k newlines": "\n" * 100_000,
    "100k spaces": " " * 100_000 + "normal",
    "100k letters": "a" * 100_000,
    "20k \\boxed{": "\\boxed{" * 20_000,
    "20k <answer>": "<answer>" * 20_000,
    "60k [": "[" * 60_000,
    "5k nested braces": "{" * 5_000 + "}" * 5_000,
    "a 20k-item negated list": "no " + ", ".join(["crack"] * 20_000),
    "20k mark mentions": " ".join(f"mark {i % 50}" for i in range(20_000)),
    "3k repeated sentences": "There is a crack on the rim. " * 3_000,
}


def degenerate_seconds() -> dict[str, float]:
    """Seconds to read (verdict and marks) each degenerate answer: reading must stay bounded."""
    out = {}
    for name, text in DEGENERATE.items():
        started = time.perf_counter()
        parse_answer(text)
        parse_mark_answer(text, range(1, 60))
        out[name] = time.perf_counter() - started
    return out


def own_corpus_agreement() -> float:
    items = json.loads(OWN_CORPUS.read_text(encoding="utf-8"))
    return sum(parse_answer(i["text"]).anomalous is i["expected"] for i in items) / len(items)


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %" if x == x else "   n/a"


def report(corpus: dict, list_misses: bool, splits: tuple[str, ...] = ("dev", "heldout")) -> None:
    answers = corpus["answers"]
    by_split = defaultdict(list)
    for a in answers:
        by_split[a["split"]].append(a)
    print(
        f"corpus: {len(answers)} real answers from {len(corpus['sources'])} source files "
        f"({', '.join(f'{k} {len(v)}' for k, v in sorted(by_split.items()))})"
    )
    print(
        f"{'split':8s} {'verdicts':>8s} {'agree':>8s} {'guesses':>8s} {'unparsed':>9s} {'marks':>6s} {'read':>8s}"
        f" {'ranges':>7s} {'read':>8s}"
    )
    for split in splits:
        v = verdict_figures(by_split[split])
        m = mark_figures(by_split[split])
        r = range_figures(by_split[split])
        print(
            f"{split:8s} {v['n']:8d} {_pct(v['agreement']):>8s} {v['guesses']:8d} "
            f"{_pct(v['unparsed']):>9s} {m['n']:6d} {_pct(m['read']):>8s} {r['n']:7d} {_pct(r['read']):>8s}"
        )
    for split in splits:
        per_domain = defaultdict(list)
        for a in by_split[split]:
            per_domain[a["domain"] or "?"].append(a)
        cells = []
        for domain, rows in sorted(per_domain.items()):
            v = verdict_figures(rows)
            if v["n"]:
                cells.append(f"{domain} {round(v['agreement'] * v['n'])}/{v['n']}")
        print(f"  {split} by domain: " + ", ".join(cells))
    read_twice = [a for a in answers if a.get("second") in VERDICTS and a["states"] in VERDICTS]
    if read_twice:
        alike = [a for a in read_twice if a["second"] == a["states"]]
        print(
            f"two readers: {len(alike)}/{len(read_twice)} answers labelled alike "
            f"({_pct(len(alike) / len(read_twice)).strip()}); figures on those:"
        )
        for split in splits:
            v = verdict_figures([a for a in alike if a["split"] == split])
            print(
                f"  {split:8s} {v['n']:5d} agree {_pct(v['agreement'])} guesses {v['guesses']} "
                f"unparsed {_pct(v['unparsed'])}"
            )
    labels = Counter(a["states"] for a in answers)
    print("labels: " + ", ".join(f"{k} {n}" for k, n in sorted(labels.items())))
    print(f"own corpus (tests/answer_corpus.json, written with the reader): {_pct(own_corpus_agreement())}")
    started = time.perf_counter()
    for a in answers:
        parse_answer(a["text"])
    per_answer = (time.perf_counter() - started) / len(answers)
    slowest = max(degenerate_seconds().items(), key=lambda kv: kv[1])
    print(
        f"reading time: {1000 * per_answer:.1f} ms per corpus answer; slowest degenerate answer "
        f"({slowest[0]}): {slowest[1]:.2f} s"
    )
    heldout = verdict_figures(by_split["heldout"]) if "heldout" in splits else {"misses": []}
    why = Counter(read_prose(e["text"]).basis for e, got in heldout["misses"] if got == "none")
    if why:
        print(
            "held-out answers left unparsed, by the reader's reason: "
            + ", ".join(f"{k} {n}" for k, n in why.most_common())
        )
    if list_misses:
        dev = verdict_figures(by_split["dev"])
        print("\ndev verdict misses:")
        for e, got in dev["misses"]:
            reading = read_prose(e["text"])
            print(
                f"- label {e['states']}, read {got} ({reading.basis}: {reading.evidence[:120]!r})\n  "
                + e["text"][:700].replace("\n", " / ")
            )
        print("\ndev range misses:")
        for e, got in range_figures(by_split["dev"])["misses"]:
            print(f"- label {e['ranges']}, read {got}\n  " + e["text"][:500].replace("\n", " / "))
        print("\ndev mark misses:")
        for e, got in mark_figures(by_split["dev"])["misses"]:
            print(f"- label {e['marks']}, read {got}\n  " + e["text"][:500].replace("\n", " / "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the dev split's misses")
    parser.add_argument("--dev-only", action="store_true", help="figures of the dev split only (while tuning)")
    args = parser.parse_args()
    report(load(), args.list, ("dev",) if args.dev_only else ("dev", "heldout"))


if __name__ == "__main__":
    main()
