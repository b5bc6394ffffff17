#!/usr/bin/env bash
# Creates .venv with the pinned runtimes from PyPI (ci/requirements.txt).
# Safe to run twice: it does nothing when the requirements have not changed.
set -euo pipefail
source "$(dirname "$0")/env.sh"

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/ci/requirements.txt" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "venv up to date ($VENV)" >&2
  exit 0
fi
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "python >= 3.10 is needed"' \
  || { echo "error: $PY is older than 3.10; install python3 (3.10 to 3.13) and run again" >&2; exit 1; }
step "creating $VENV (torch 2.11.0 with its CUDA libraries is about 5 GB; a couple of minutes)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -r "$ROOT/ci/requirements.txt"
echo "$want" > "$stamp"
