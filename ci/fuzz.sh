#!/usr/bin/env bash
# Fuzzes the host's untrusted-input code with cargo-fuzz (fuzz/, its own
# workspace): image decoding + CLIP preprocessing, HTTP request parsing, the
# CLIP tokenizer. Each target runs SECONDS (default 600) from the committed
# seeds (fuzz/corpus/<target>/, read only) and the inputs that once failed
# (fuzz/regressions/<target>/); what it grows goes to
# fuzz/grown/<target>/ and findings to fuzz/artifacts/<target>/ (both ignored).
#
#   bash ci/fuzz.sh [SECONDS] [TARGET...]      # one after the other
#   FUZZ_PARALLEL=1 bash ci/fuzz.sh 600        # all at once, one process each
#   nice -n 19 bash ci/fuzz.sh 600             # on a shared machine
#
# Needs the nightly toolchain (rustup toolchain install nightly); installs
# cargo-fuzz from crates.io if missing. Prints each target's executions,
# exec/s, coverage (cov, ft), corpus size and whether it crashed; the full
# libFuzzer logs are fuzz/logs/<target>.log. Exits 1 if any target crashed.
set -euo pipefail
here="$(dirname "$0")"
source "$here/env.sh"
cd "$ROOT"

seconds="${1:-600}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(decode_preprocess request_parse tokenizer)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

# The tokenizer target reads the CLIP vocabulary: the exported model's copy,
# else the one open_clip ships in the venv.
if [[ -z "${SWITCHYARD_BPE_VOCAB:-}" ]]; then
  shopt -s nullglob
  vocab=("$ROOT"/models/clip/ViT-B-32/bpe_simple_vocab_16e6.txt.gz
    "$VENV"/lib/python3*/site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz)
  shopt -u nullglob
  if [[ ${#vocab[@]} -eq 0 ]]; then
    echo "no bpe_simple_vocab_16e6.txt.gz: run ci/prepare.sh, or set SWITCHYARD_BPE_VOCAB" >&2
    exit 2
  fi
  export SWITCHYARD_BPE_VOCAB="${vocab[0]}"
fi

step "cargo +nightly fuzz build (${targets[*]})"
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "$t"
done

mkdir -p fuzz/logs
run_one() {
  local t="$1"
  mkdir -p "fuzz/grown/$t" "fuzz/artifacts/$t"
  local start end rc=0
  start=$(date +%s)
  # -timeout: one input taking 60 s is a finding (a denial of service), not patience.
  # Inputs that once failed (fuzz/regressions/<target>/) are replayed first.
  local dirs=("fuzz/grown/$t" "fuzz/corpus/$t")
  [[ -d "fuzz/regressions/$t" ]] && dirs+=("fuzz/regressions/$t")
  cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1 || rc=$?
  end=$(date +%s)
  echo "$rc $((end - start))" >"fuzz/logs/$t.status"
}

if [[ "${FUZZ_PARALLEL:-0}" == 1 ]]; then
  step "fuzzing ${targets[*]} at once, ${seconds} s each"
  pids=()
  for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
else
  for t in "${targets[@]}"; do
    step "fuzzing $t for ${seconds} s"
    run_one "$t"
  done
fi

step "results"
printf '%-18s %6s %12s %8s %7s %8s %7s %s\n' target wall_s executions exec/s cov ft corpus result
crashed=0
for t in "${targets[@]}"; do
  log="fuzz/logs/$t.log"
  read -r rc wall <"fuzz/logs/$t.status"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line: "#N  DONE  cov: C ft: F corp: U/SIZE ...".
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  if [[ "$rc" == 0 ]]; then
    result="ok"
  else
    result="CRASH (exit $rc): $(grep -m1 -oE 'Test unit written to .*' "$log" || echo "see $log")"
    crashed=1
  fi
  printf '%-18s %6s %12s %8s %7s %8s %7s %s\n' "$t" "$wall" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit "$crashed"
