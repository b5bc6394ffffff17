#!/usr/bin/env bash
# Fuzzes the host's untrusted-input code with cargo-fuzz (fuzz/, its own
# workspace; one target per fuzz/fuzz_targets/*.rs, each a thin libFuzzer
# entry around a function of fuzz/src/, which ci/test.sh replays on stable).
# Each target runs SECONDS (default 600) from the committed seeds
# (fuzz/corpus/<target>/, read only) and the inputs that once failed
# (fuzz/regressions/<target>/); what it grows goes to fuzz/grown/<target>/
# and findings to fuzz/artifacts/<target>/ (both ignored).
#
#   bash ci/fuzz.sh [SECONDS] [TARGET...]      # one after the other
#   FUZZ_PARALLEL=1 bash ci/fuzz.sh 600        # all at once, one process each
#   nice -n 19 bash ci/fuzz.sh 600             # on a shared machine
#   FUZZ_RECORD=1 bash ci/fuzz.sh 600          # also append the figures to docs/fuzzing.md
#
# Needs the nightly toolchain (rustup toolchain install nightly); installs
# cargo-fuzz from crates.io if missing. Prints each target's executions,
# exec/s, coverage (cov, ft: at start and at the end), corpus and crashes,
# as a table and as markdown rows (date, commit) for docs/fuzzing.md; the
# full libFuzzer logs are fuzz/logs/<target>.log. Exits 1 if any target
# crashed.
set -euo pipefail
here="$(dirname "$0")"
source "$here/env.sh"
cd "$ROOT"

seconds="${1:-600}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

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

# The code fuzzed: the commit when the build starts (+changes: tracked files differ from it).
commit="$(git rev-parse --short HEAD)"
[[ -z "$(git status --porcelain --untracked-files=no)" ]] || commit="$commit+changes"
today="$(date -u +%Y-%m-%d)"

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
printf '%-18s %6s %12s %8s %13s %15s %14s %s\n' target wall_s executions exec/s cov ft corpus result
rows=()
crashed=0
for t in "${targets[@]}"; do
  log="fuzz/logs/$t.log"
  read -r rc wall <"fuzz/logs/$t.status"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # Status lines: "#N  INITED cov: C ft: F corp: U/SIZE ..." at the start, the last one at the end.
  first=$(grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$log" || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<<"$2"; }
  cov="$(field cov "$first")→$(field cov "$last")"
  ft="$(field ft "$first")→$(field ft "$last")"
  corp="$(field corp "$first")→$(field corp "$last")"
  if [[ "$rc" == 0 ]]; then
    result="ok"
    crashes=0
  else
    result="CRASH (exit $rc): $(grep -m1 -oE 'Test unit written to .*' "$log" || echo "see $log")"
    crashes="1 ($(grep -m1 -oE 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //' || echo "exit $rc"))"
    crashed=1
  fi
  printf '%-18s %6s %12s %8s %13s %15s %14s %s\n' "$t" "$wall" "${execs:-?}" "${rate:-?}" "$cov" "$ft" "$corp" "$result"
  rows+=("| $today | $commit | \`$t\` | $wall s | ${execs:-?} | ${rate:-?} | $cov | $ft | $corp | $crashes |")
done
echo
echo "| date | commit | target | wall | executions | exec/s | cov | ft | corpus (files/size) | crashes |"
echo "|---|---|---|---:|---:|---:|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [[ "${FUZZ_RECORD:-0}" == 1 ]]; then
  printf '%s\n' "${rows[@]}" >>docs/fuzzing.md
  echo "appended ${#rows[@]} rows to docs/fuzzing.md (the table at its end)"
fi
exit "$crashed"
