#!/usr/bin/env bash
# Set up Anomalens Workstation in ./.venv.
#   scripts/setup.sh         runtime only (enough to start the workstation)
#   scripts/setup.sh --dev   plus test tools, and the virtual display (Xvfb, Mesa) the GUI tests use
# torch is pinned here on purpose: an unpinned torch makes pip pick a multi-GB build it may have to
# download. Set TORCH_SPEC to override (e.g. TORCH_SPEC="torch==2.14.1 --index-url https://download.pytorch.org/whl/cpu").
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ "$dev" = 1 ] && command -v apt-get >/dev/null 2>&1; then
  missing=0
  for tool in xvfb-run xauth cmake g++; do command -v "$tool" >/dev/null 2>&1 || missing=1; done
  [ -e /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0 ] || [ -e /usr/lib/aarch64-linux-gnu/libxcb-cursor.so.0 ] || missing=1
  if [ "$missing" = 1 ]; then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq cmake g++ xvfb xauth libgl1-mesa-dri libglx-mesa0 \
      libegl1 libegl-mesa0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
      libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1 libglib2.0-0 \
      libxrender1 libxi6 libsm6 >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip

if [ -z "${TORCH_SPEC:-}" ]; then
  case "$(uname -m)" in
    x86_64) TORCH_SPEC="torch==2.14.1 torchvision==0.29.1" ;;
    *) TORCH_SPEC="torch==2.9.1 torchvision==0.24.1" ;;
  esac
fi
python -c "import torch" 2>/dev/null || python -m pip install -q $TORCH_SPEC

if [ "$dev" = 1 ]; then
  # llama-cpp-python (the real-server conformance test) builds llama.cpp from source: CPU only, no
  # machine-specific instructions (the wheel stays portable in pip's cache), no tools or examples
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  python -m pip install -q -r requirements-dev.txt
else
  python -m pip install -q -r requirements.txt
fi
echo "Anomalens environment ready in .venv"
