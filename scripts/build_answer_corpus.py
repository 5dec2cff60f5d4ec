"""Build tests/answers/real_answers.json from gathered answer files (JSON lines), with its fixed split.

    python scripts/build_answer_corpus.py GATHERED_DIR [SECOND_LABELS_DIR]

Each input line is one answer a model wrote, copied from a public source: ``text``, ``states``
(what the answer itself states: "anomalous", "normal", "none", or "n/a" for a mark answer about
something else), ``why``, ``model``, ``domain``, ``question``, ``source`` (repo, path, commit,
title, url), and for Set-of-Mark answers ``marks`` / ``marks_normal`` / ``marks_mentioned``.

A second reader labelled the verdict answers blind (texts and questions only, neither the first
labels nor the reader's output): SECOND_LABELS_DIR holds its ``labels_*.json`` files ({id: label},
id = the first 12 hex digits of the SHA-256 of the stripped text); the label is kept beside the
first as ``second``, so figures can be given on the answers both readers read alike.

The split is fixed by the text alone, before any tuning: an answer is held out when the first
hex digit of the SHA-256 of its stripped text is 0-7 (about half). Adding answers later never
moves an existing one between splits. The reader is tuned on "dev" only; "heldout" is measured,
never read while tuning (benchmarks/answers.py lists dev failures only).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "answers" / "real_answers.json"
LABELS = {"anomalous", "normal", "none", "n/a"}
EXCLUDED_REPOS = ("caoyunkang/",)  # Cao et al. (2023) and its case repository: kept for an outside check


def split_of(text: str) -> str:
    return "heldout" if hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[0] in "01234567" else "dev"


def source_key(source: dict) -> str:
    return "{}:{}".format(source.get("repo") or source.get("url") or "?", source.get("path") or "")


def answer_id(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def main(folder: Path, second_dir: Path | None = None) -> None:
    second: dict[str, str] = {}
    if second_dir is not None:
        for file in sorted(second_dir.glob("labels_*.json")):
            second.update(json.loads(file.read_text(encoding="utf-8")))
    sources: dict[str, dict] = {}
    answers: list[dict] = []
    seen: set[str] = set()
    for file in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"]
            source = row.get("source") or {}
            repo = str(source.get("repo") or "")
            if any(repo.lower().startswith(x) for x in EXCLUDED_REPOS):
                raise SystemExit(f"{file.name}:{number}: excluded source {repo}")
            if row["states"] not in LABELS:
                raise SystemExit(f"{file.name}:{number}: label {row['states']!r}")
            if text.strip() in seen:
                continue
            marks = [row.get(k) or [] for k in ("marks", "marks_normal", "marks_mentioned")]
            if any(not isinstance(m, int) or isinstance(m, bool) for group in marks for m in group):
                print(f"{file.name}:{number}: skipped (marks that are not numbers: {marks[0]})")
                continue
            seen.add(text.strip())
            key = source_key(source)
            sources.setdefault(key, {k: source[k] for k in ("repo", "path", "commit", "url", "title") if source.get(k)})
            entry = {
                "text": text,
                "states": row["states"],
                "split": split_of(text),
                "source": key,
                "model": row.get("model", ""),
                "domain": row.get("domain", ""),
                "question": row.get("question", ""),
                "why": row.get("why", ""),
            }
            for field in ("marks", "marks_normal", "marks_mentioned", "ranges", "templated"):
                if field in row:
                    entry[field] = row[field]
            if answer_id(text) in second:
                entry["second"] = second[answer_id(text)]
            answers.append(entry)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "about": (
            "Real answers of vision-language models about anomalies, copied from public sources "
            "(each answer names its source; `sources` gives repository, path and commit). Labels say "
            "what the answer itself states, judged by reading it, not whether the item is truly "
            "anomalous. Nothing here comes from Cao et al. (2023) or its case repository. Most texts were "
            "extracted by script from the stored files; some were transcribed from the search tool's output "
            "and may differ from the source in whitespace or an escaped character."
        ),
        "split_rule": "heldout when sha256(text.strip()) starts with a hex digit 0-7, else dev; tune on dev only",
        "second_reader": (
            "`second` is a blind second reading of the verdict answers (texts and questions only); "
            "answers without it were added after that reading"
        ),
        "sources": dict(sorted(sources.items())),
        "answers": answers,
    }
    OUT.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    counts: dict[str, int] = {}
    for a in answers:
        counts[a["split"]] = counts.get(a["split"], 0) + 1
    print(f"{len(answers)} answers from {len(sources)} source files -> {OUT} ({counts})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
