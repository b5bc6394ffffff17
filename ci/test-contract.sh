#!/usr/bin/env bash
# The contract tests alone (tests/tests/contract.rs), over every plugin: an
# available plugin runs real models, an unavailable one must still describe and
# probe itself and refuse `open` with Unavailable. The CI matrix's cuda job
# runs this on GPU-less runners (the CUDA plugin in unavailable mode);
# ci/gpu-check.sh runs it on a GPU. Sets up whatever is missing first.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/prepare.sh"
source "$here/env.sh"
cd "$ROOT"

step "cargo test --release -p switchyard-tests --test contract"
# --nocapture: each test says whether its plugin ran models or was unavailable here.
cargo test --release -p switchyard-tests --test contract --locked -- --nocapture
