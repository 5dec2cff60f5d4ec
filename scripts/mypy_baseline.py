#!/usr/bin/env python3
"""mypy with a baseline that only shrinks.

    .venv/bin/python scripts/mypy_baseline.py                  check: fail on any error not in the baseline
    .venv/bin/python scripts/mypy_baseline.py --update         rewrite the baseline (refused if it would grow)
    .venv/bin/python scripts/mypy_baseline.py --update --allow-growth   rewrite it even with new entries

mypy runs with the `[tool.mypy]` settings in pyproject.toml (which name the checked packages). Each
error becomes one baseline entry ``path:code:message``: no line or column numbers, so moving code
does not change it. The same entry may appear more than once (counted): a third copy of an error
a file already had twice is a new error. An entry whose file no longer exists and that reappears
with the same code and message in another file moved with it (a renamed module): not new. Fixed
entries are reported, never an error: run ``--update`` to drop them so they cannot come back.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".mypy-baseline.txt"

# path:line[:col][:end_line:end_col]: error: message  [code]
_ERROR = re.compile(r"^(?P<path>[^:\n]+?):\d+(?::\d+)*: error: (?P<message>.*?)(?:\s+\[(?P<code>[a-z0-9-]+)\])?$")
# messages that quote a line number ('already defined on line 12', 'see line 40')
_LINE_IN_MESSAGE = re.compile(r"\bline \d+\b")

HEADER = (
    "# mypy errors accepted for now: path:code:message, one per error (scripts/mypy_baseline.py).\n"
    "# It only shrinks: fix an error, then run `.venv/bin/python scripts/mypy_baseline.py --update`.\n"
)


def normalise(line: str) -> str | None:
    """``path:code:message`` for one mypy error line; None for notes, summaries and other output."""
    match = _ERROR.match(line.rstrip())
    if match is None:
        return None
    path = match["path"].replace("\\", "/")
    if path.startswith("./"):
        path = path[2:]
    message = _LINE_IN_MESSAGE.sub("line N", match["message"].strip())
    return f"{path}:{match['code'] or 'misc'}:{message}"


def run_mypy(extra: list[str]) -> Counter[str]:
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--no-pretty",
        "--no-error-summary",
        "--hide-error-context",
        "--no-color-output",
        *extra,
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    entries = Counter(entry for entry in map(normalise, proc.stdout.splitlines()) if entry is not None)
    # 0: clean, 1: type errors; anything else (2: bad config, crash) is not a result to compare
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not entries):
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"mypy did not run to the end (exit code {proc.returncode})")
    return entries


def read_baseline(path: Path) -> Counter[str]:
    if not path.is_file():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(line for line in lines if line.strip() and not line.startswith("#"))


def write_baseline(path: Path, entries: Counter[str]) -> None:
    body = "".join(f"{entry}\n" for entry in sorted(entries.elements()))
    path.write_text(HEADER + body, encoding="utf-8")


def split_moves(new: Counter[str], fixed: Counter[str]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(new, fixed, moved): an error that left a file which no longer exists and reappears with the
    same code and message in another file moved with its code (a renamed module); it is not new."""
    new, fixed, moved = Counter(new), Counter(fixed), Counter()
    gone: dict[str, list[str]] = {}
    for entry in fixed.elements():
        path, key = entry.split(":", 1)
        if not (ROOT / path).exists():
            gone.setdefault(key, []).append(entry)
    for entry in sorted(new.elements()):
        key = entry.split(":", 1)[1]
        if gone.get(key):
            old = gone[key].pop()
            new[entry] -= 1
            fixed[old] -= 1
            moved[entry] += 1
    return +new, +fixed, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline with the current errors")
    parser.add_argument("--allow-growth", action="store_true", help="with --update: accept new entries too")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=f"default: {BASELINE.name}")
    parser.add_argument("mypy_args", nargs="*", help="extra mypy arguments (after --)")
    args = parser.parse_args(argv)

    current = run_mypy(args.mypy_args)
    baseline = read_baseline(args.baseline)
    new, fixed, moved = split_moves(current - baseline, baseline - current)

    if args.update:
        if new and not args.allow_growth:
            print(f"refusing to grow the baseline by {sum(new.values())} entries (use --allow-growth):")
            for entry in sorted(new.elements()):
                print(f"  + {entry}")
            return 1
        write_baseline(args.baseline, current)
        print(
            f"{args.baseline.name}: {sum(current.values())} entries ({sum(fixed.values())} removed, "
            f"{sum(moved.values())} moved with their file, {sum(new.values())} added)"
        )
        return 0

    if new:
        print(f"mypy: {sum(new.values())} errors not in {args.baseline.name}:")
        for entry in sorted(new.elements()):
            print(f"  {entry}")
        print("Fix them (run `.venv/bin/python -m mypy` for line numbers); the baseline never grows.")
    if fixed:
        print(
            f"mypy: {sum(fixed.values())} baseline entries are now fixed; shrink the baseline with "
            "`.venv/bin/python scripts/mypy_baseline.py --update`."
        )
    if moved:
        print(
            f"mypy: {sum(moved.values())} baseline entries moved with a renamed file; `--update` records "
            "their new paths."
        )
    if not new:
        print(f"mypy: no new errors ({sum(current.values())} known, baseline {sum(baseline.values())}).")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
