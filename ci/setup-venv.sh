#!/usr/bin/env bash
# Creates .venv with the pinned runtimes from PyPI (ci/requirements.txt).
# With SWITCHYARD_GPU=1 (Linux + NVIDIA), also ci/requirements-gpu.txt:
# onnxruntime-gpu in place of onnxruntime, for ONNX Runtime's CUDA provider.
# Safe to run twice: it does nothing when the requirements have not changed.
# Works on Linux and macOS (python3 3.10 to 3.13).
set -euo pipefail
source "$(dirname "$0")/env.sh"

gpu="${SWITCHYARD_GPU:-0}"
stamp="$VENV/.requirements.sha256"
want="$(sha256 "$ROOT/ci/requirements.txt")"
if [[ "$gpu" == 1 ]]; then
  want="$want+gpu:$(sha256 "$ROOT/ci/requirements-gpu.txt")"
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "venv up to date ($VENV)" >&2
  exit 0
fi
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "python >= 3.10 is needed"' \
  || { echo "error: $PY is older than 3.10; install python3 (3.10 to 3.13) and run again" >&2; exit 1; }
step "creating $VENV (torch 2.11.0 is about 5 GB with its CUDA libraries on Linux; a couple of minutes)"
"$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet -r "$ROOT/ci/requirements.txt"
# onnxruntime and onnxruntime-gpu share one package folder: keep exactly one of them.
ort_cpu="$(grep -E '^onnxruntime==' "$ROOT/ci/requirements.txt")"
if [[ "$gpu" == 1 ]]; then
  step "SWITCHYARD_GPU=1: onnxruntime-gpu in place of onnxruntime"
  "${pip[@]}" uninstall --quiet -y onnxruntime
  "${pip[@]}" install --quiet -r "$ROOT/ci/requirements-gpu.txt"
elif "${pip[@]}" show --quiet onnxruntime-gpu >/dev/null 2>&1; then
  step "removing onnxruntime-gpu (SWITCHYARD_GPU is not 1), restoring $ort_cpu"
  "${pip[@]}" uninstall --quiet -y onnxruntime-gpu
  "${pip[@]}" install --quiet --force-reinstall --no-deps "$ort_cpu"
fi
echo "$want" > "$stamp"
