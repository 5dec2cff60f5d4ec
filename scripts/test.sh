#!/usr/bin/env bash
# Run the whole test suite on a virtual X display (Qt with xcb, VTK with Mesa), as CI does.
# Extra arguments go to pytest. pytest exits non-zero when no test is collected.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=xcb
if [ -n "${DISPLAY:-}" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
