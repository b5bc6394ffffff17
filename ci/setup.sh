#!/usr/bin/env bash
# One command from a fresh clone to a working switchyard: pinned runtimes,
# release build of the host and the plugins, default models, then
# `switchyard probe` showing which device it selected and why.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/setup-venv.sh"
bash "$here/build.sh"
bash "$here/make-models.sh"
source "$here/env.sh"
step "switchyard probe"
"$ROOT/target/release/switchyard" probe
