#!/usr/bin/env bash
# The benchmark command: prepares everything (venv, release build, models) as
# the tests do, then runs tools/bench.py, which prints switchyard against the
# Python reference pipelines with ratios (medians of --repeat runs; see its
# --help). Run it on a quiet machine: the figures are wall-clock throughput.
#   bash ci/bench.sh                 # everything, 3 runs each
#   bash ci/bench.sh --only camera,texts --repeat 5
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/ci/prepare.sh"
exec "$VENV/bin/python" "$ROOT/tools/bench.py" "$@"
