#!/usr/bin/env bash
# Makes the models the tests and the default run use, offline (random
# weights on real architectures). Safe to run twice.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if [[ ! -f models/test/meta.json || tools/make_test_models.py -nt models/test/meta.json ]]; then
  step "tools/make_test_models.py -> models/test"
  python tools/make_test_models.py --out models/test
fi
