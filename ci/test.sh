#!/usr/bin/env bash
# Runs every test: the module graph check (tools/module_graph.py: no module
# cycle, no upward import, every module and crate in a layer of
# tools/layers.toml), unit tests of the pure logic, the contract tests against
# every plugin, the end-to-end tests of the binary, the fuzz targets built on
# stable with their committed corpora and regression inputs replayed
# (fuzz/tests/replay.rs; the fuzzing itself is ci/fuzz.sh, on nightly), a
# one-minute soak of the server with bad inputs mixed in (tools/soak.sh; the
# 10-minute one is in docs/benchmarks.md), then fmt, clippy (both
# workspaces) and actionlint over the CI workflows (ci/lint-workflows.sh).
# Sets up whatever is missing first (idempotent), so it works on a fresh clone.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/prepare.sh"
source "$here/env.sh"
cd "$ROOT"

step "module graph: no cycle, no upward import (tools/layers.toml)"
"$VENV/bin/python" "$ROOT/tools/module_graph.py" --check
step "cargo test --release --workspace"
cargo test --release --workspace --locked 2>&1 | tee "$ROOT/target/test.log"
step "fuzz targets: build on stable, replay fuzz/corpus and fuzz/regressions"
# Not --locked: fuzz/Cargo.lock follows the host's dependencies, which change
# in the main workspace; a new one is resolved here and reported, not a failure.
fuzz_lock="$(sha256 "$ROOT/fuzz/Cargo.lock")"
cargo test --release --manifest-path "$ROOT/fuzz/Cargo.toml" 2>&1 | tee -a "$ROOT/target/test.log"
[[ "$(sha256 "$ROOT/fuzz/Cargo.lock")" == "$fuzz_lock" ]] ||
  echo "note: fuzz/Cargo.lock was updated for the host's dependencies; commit it" >&2
step "soak: 60 s of mixed good and bad requests, every answer checked"
SOAK_SECONDS="${SOAK_SECONDS:-60}" SOAK_WARMUP_SECONDS=10 bash "$ROOT/tools/soak.sh"
step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path "$ROOT/fuzz/Cargo.toml" -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --release --workspace --all-targets --locked -- -D warnings
cargo clippy --release --manifest-path "$ROOT/fuzz/Cargo.toml" --all-targets -- -D warnings
bash "$here/lint-workflows.sh"
passed=$(grep -E '^test result: ok' "$ROOT/target/test.log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -E '^test result:' "$ROOT/target/test.log" | awk '{s += $6} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
