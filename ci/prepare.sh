#!/usr/bin/env bash
# Everything a run needs, idempotent: the pinned venv, the release build of
# the host, plugins and fixtures, and the offline models. Called by setup.sh,
# test.sh and test-contract.sh.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/setup-venv.sh"
bash "$here/build.sh"
bash "$here/make-models.sh"
