#!/usr/bin/env bash
# The house checks and the whole test suite, as CI runs them (.ci/run runs exactly this script).
#
#   scripts/test.sh           in this order, stopping at the first failure:
#                               1. ruff check; ruff format --check (only once the file .ruff-format-enforced
#                                  exists at the repository root)
#                               2. lint-imports: the import contracts in pyproject.toml
#                               3. scripts/mypy_baseline.py: no mypy error beyond .mypy-baseline.txt
#                               4. pytest -m "not gui" with Qt made unimportable (ANOMALENS_NO_QT=1, pytest-qt
#                                  off; see tests/conftest.py): the core and the plugins run headless
#                               5. pytest -m gui on a virtual X display
#                             4 and 5 partition the suite: every test runs once.
#   scripts/test.sh ARGS...   only pytest with ARGS (e.g. tests/test_store.py, -k name), one run on the
#                             virtual display with Qt available; no lint or type steps.
#
# Qt uses xcb on Xvfb (xvfb-run; VTK renders with Mesa); where DISPLAY is set, that display is used.
# pytest exits non-zero (5) when it collects no test, so each part must find tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=xcb
PY=.venv/bin/python

on_display() {
  if [ -n "${DISPLAY:-}" ]; then
    "$@"
  else
    xvfb-run -a -s "-screen 0 1920x1080x24" "$@"
  fi
}

if [ "$#" -gt 0 ]; then
  on_display "$PY" -m pytest "$@"
  exit
fi

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
.venv/bin/ruff check .
if [ -e .ruff-format-enforced ]; then
  step "ruff format --check"
  .venv/bin/ruff format --check .
else
  step "ruff format --check: skipped (no .ruff-format-enforced yet)"
fi

step "lint-imports"
.venv/bin/lint-imports --no-logo

step "mypy against .mypy-baseline.txt"
"$PY" scripts/mypy_baseline.py

step "pytest -m 'not gui', Qt unimportable"
ANOMALENS_NO_QT=1 "$PY" -m pytest -m "not gui" -p no:pytest-qt

step "pytest -m gui, on a display"
on_display "$PY" -m pytest -m gui
