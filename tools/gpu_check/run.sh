#!/usr/bin/env bash
# The GPU check that travels (docs/platform-setup.md, "The GPU check bundle").
# Made by ci/gpu-bundle.sh into dist/gpu-check/; run it there, on a Linux x86_64
# machine with an NVIDIA GPU and a python3 that has torch (no Rust, no network):
#
#   bash run.sh [--out DIR] [--work DIR] [--keep-work]
#
#   --out DIR    logs/, results.tsv, summary.txt, summary.json, bench.json (default ./gpu-check-out)
#   --work DIR   the temporary folder for the wheels, the installed host and plugins and the models
#                (about 1.3 GB; default: a new folder under $TMPDIR or /tmp, removed at the end)
#
# Settings: PYTHON (default python3), ORT=bundle|python (which ONNX Runtime the plugins use:
# the bundled 1.31.1 library, default, or the one in that python's site-packages),
# GPU_CHECK_DEADLINE_S (default 480: no check starts after it, each check's limit is cut to it).
#
# Every check runs with its own limit and log, and prints PASS, FAIL or SKIP; one that needs a GPU
# says "SKIP ... no NVIDIA GPU here" where there is none. The summary goes to stdout and to
# summary.json. Exit codes:
#   0  every check passed, on a GPU
#   1  a check failed (the summary names it and its log)
#   2  the run could not start: no python3 with torch, or the bundle is incomplete
#   3  no NVIDIA GPU here: every check that needs none passed, the GPU checks were skipped
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$PWD/gpu-check-out"
WORK=""
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --keep-work) KEEP=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
DEADLINE="${GPU_CHECK_DEADLINE_S:-480}"
mkdir -p "$OUT/logs" || exit 2
OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT"/logs/*.log "$OUT/results.tsv" "$OUT/summary.json" "$OUT/summary.txt" "$OUT/bench.json"
if [[ -z "$WORK" ]]; then
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-gpu-check.XXXXXX")" || exit 2
  [[ $KEEP -eq 1 ]] || trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK" && WORK="$(cd "$WORK" && pwd)"

die() { echo "run.sh: $*" >&2; exit 2; }
for f in packages tools/gpu_check/judge.py wheels photos bin/contract; do
  [[ -e "$HERE/$f" ]] || die "the bundle is incomplete: $HERE/$f is missing (make it with ci/gpu-bundle.sh)"
done
PY_CMD="${PYTHON:-python3}"
command -v "$PY_CMD" >/dev/null || die "no $PY_CMD on PATH: this check needs a python3 with torch"
PY="$("$PY_CMD" -c 'import sys; print(sys.executable)')" || die "$PY_CMD does not run"
"$PY" -c 'import torch' 2>/dev/null || die "$PY has no torch: this check needs a python3 with torch"
command -v timeout >/dev/null || die "no timeout (coreutils) on PATH"

# A clean slate: no device settings inherited from the caller.
unset DEVICE FORCE_CPU DTYPE CLIP_ENGINE ONNX_PROVIDERS SWITCHYARD_PLUGINS CUDA_VISIBLE_DEVICES LIBTORCH \
  ORT_DYLIB_PATH VIRTUAL_ENV SWITCHYARD_THREADS MODEL_DIR SWITCHYARD_PLUGIN_DIR
export HERE OUT WORK PY
export PYTHONPATH="$WORK/py${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
export SY="$WORK/bin/switchyard" CONTRACT="$WORK/bin/contract" JUDGE="$HERE/tools/gpu_check/judge.py"
export SWITCHYARD_PLUGIN_DIR="$WORK/plugins" MODEL_DIR="$WORK/models" SWITCHYARD_PYTHON="$PY" SWITCHYARD_LOG=warn
export IMAGES="$WORK/parity-images" FACES="$WORK/faces" TEXTS="$WORK/texts.txt" EMB="$WORK/embeddings"
export NPROC="$(nproc 2>/dev/null || echo 2)"
GPUS=0
GPU_WHY="not probed yet"
ORT_CUDA=0
declare -A STATUS=()
N=0

# check ID NEEDS LIMIT_S "NAME" "REQUIRES" COMMAND...
#   NEEDS: gpu (SKIP without one) or none. REQUIRES: ids that must have passed first.
#   COMMAND's output goes to logs/NN-ID.log; exit 0 PASS, 77 SKIP (its last `SKIP:` line says why),
#   124/137 FAIL (ran past its limit), else FAIL.
check() {
  local id="$1" needs="$2" limit="$3" name="$4" reqs="$5" status="" note="" rc r left t
  shift 5
  N=$((N + 1))
  local log
  log="logs/$(printf '%02d' "$N")-$id.log"
  t=$SECONDS
  if [[ "$needs" == gpu && "$GPUS" == 0 ]]; then
    status=SKIP note="no NVIDIA GPU here"
  fi
  for r in $reqs; do
    [[ -n "$status" ]] && break
    [[ "${STATUS[$r]:-}" == PASS ]] || { status=FAIL note="not run: $r did not pass"; }
  done
  if [[ -z "$status" ]]; then
    left=$((DEADLINE - (SECONDS - T0)))
    if ((left < 5)); then
      status=FAIL note="not run: past the run's ${DEADLINE} s deadline"
    else
      ((limit > left)) && limit=$left
      timeout -k 5 "$limit" bash -c '"$@"' _ "$@" >"$OUT/$log" 2>&1 </dev/null
      rc=$?
      case $rc in
        0) status=PASS ;;
        77) status=SKIP note="$(grep '^SKIP:' "$OUT/$log" | tail -1 | sed 's/^SKIP: *//')" ;;
        124|137) status=FAIL note="ran past its ${limit} s limit; log $log" ;;
        *) status=FAIL note="exit $rc; log $log" ;;
      esac
    fi
  fi
  STATUS[$id]=$status
  [[ -f "$OUT/$log" ]] || log=""
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$status" "$id" "$name" "$((SECONDS - t))" "$note" "$log" >>"$OUT/results.tsv"
  if [[ -n "$note" ]]; then
    printf '%-5s %s  (%s)\n' "$status" "$name" "$note"
  else
    printf '%-5s %s  [%s s]\n' "$status" "$name" "$((SECONDS - t))"
  fi
  if [[ "$status" == FAIL && -n "$log" ]]; then tail -n 12 "$OUT/$log" | sed 's/^/      | /'; fi
  return 0
}

# ---------------------------------------------------------------- the steps (run inside check)
install_wheels() {
  local py=() w
  for w in "$HERE"/wheels/*.whl; do [[ "$(basename "$w")" == onnxruntime-* ]] || py+=("$w"); done
  "$PY" "$HERE/tools/gpu_check/wheels.py" install "$WORK/py" "${py[@]}" || return 1
  local ort_wheel=("$HERE"/wheels/onnxruntime-*.whl)
  if [[ -f "${ort_wheel[0]}" ]]; then
    "$PY" "$HERE/tools/gpu_check/wheels.py" runtime "$WORK/ort" "${ort_wheel[0]}" >"$WORK/ort.path" || return 1
    echo "ONNX Runtime for the plugins: $(cat "$WORK/ort.path")"
  fi
  echo "python $("$PY" -V 2>&1) at $PY; PYTHONPATH=$PYTHONPATH"
  "$PY" "$HERE/tools/gpu_check/wheels.py" report torch torchvision open_clip ftfy wcwidth regex timm \
    huggingface_hub safetensors onnx onnxruntime numpy PIL
}

install_switchyard() {
  mkdir -p "$WORK/bin" "$WORK/plugins" || return 1
  tar -xzf "$HERE"/packages/switchyard-host-*.tar.gz -C "$WORK/bin" || return 1
  (cd "$WORK/bin" && sha256sum -c SHA256SUMS) || return 1
  "$SY" --version || return 1
  local pkg
  for pkg in "$HERE"/packages/switchyard-backend-*.tar.gz; do
    "$SY" plugin install "$pkg" --plugin-dir "$WORK/plugins" || return 1
  done
  cp "$HERE/bin/contract" "$CONTRACT" && chmod +x "$CONTRACT"
}

plugin_list() {
  "$SY" plugin list | tee "$WORK/plugin-list.txt" || return 1
  grep -q "libtorch .* (found by python: SWITCHYARD_PYTHON=" "$WORK/plugin-list.txt" || { echo "libtorch not found through SWITCHYARD_PYTHON"; return 1; }
  ! grep -q MISSING "$WORK/plugin-list.txt" || { echo "a runtime is MISSING"; return 1; }
  if [[ -n "${ORT_DYLIB_PATH:-}" ]]; then
    echo; echo "== without ORT_DYLIB_PATH: the python's own onnxruntime, found through SWITCHYARD_PYTHON"
    env -u ORT_DYLIB_PATH "$SY" plugin list | tee "$WORK/plugin-list-python.txt"
    local v
    v="$(grep -m1 -o 'onnxruntime  *[0-9.]* at [^ ]*' "$WORK/plugin-list-python.txt")"
    [[ -n "$v" ]] && echo "FINDING: the python's own ONNX Runtime is usable by the plugins too: $v"
  fi
  return 0
}

small_models() {
  "$PY" "$HERE/tools/make_test_models.py" --out "$MODEL_DIR/test" || return 1
  "$PY" "$HERE/tools/make_face_models.py" --out "$MODEL_DIR/faces/buffalo_l" --force || return 1
  "$PY" "$HERE/tools/gpu_check/parity_images.py" "$IMAGES" "$HERE/photos" | wc -l | sed 's/$/ parity images/' || return 1
  mkdir -p "$FACES" && cp "$HERE"/photos/insightface/* "$HERE/photos/skimage/astronaut.png" "$FACES/" || return 1
  "$PY" "$JUDGE" texts "$TEXTS" 300 && wc -l "$TEXTS"
}

export_clip_bg() {  # in the background, with its own limit; the `export` check waits for it
  (
    timeout -k 5 "$1" "$PY" "$HERE/tools/export_clip.py" --model ViT-B-32 --pretrained none --seed 0 \
      --out "$MODEL_DIR" >"$WORK/export.log" 2>&1 </dev/null
    echo $? >"$WORK/export.rc"
  ) &
}

wait_export() {
  while [[ ! -f "$WORK/export.rc" ]]; do sleep 1; done
  cat "$WORK/export.log"
  local rc
  rc="$(cat "$WORK/export.rc")"
  [[ "$rc" == 0 ]] || { echo "tools/export_clip.py exited $rc"; return 1; }
  "$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print('exported', c['model'], c['pretrained'], 'timings', c.get('timings_s'))" \
    "$MODEL_DIR/clip/ViT-B-32/config.json"
}

# probe_selects KIND [INDEX|rejected=KIND2] -- [VAR=VALUE...]
probe_selects() {
  local args=()
  while [[ "$1" != -- ]]; do args+=("$1"); shift; done
  shift
  local f="$WORK/probe-$RANDOM.json"
  env "$@" "$SY" probe --json >"$f"   # exit 1 = nothing selected: judged below
  "$PY" "$JUDGE" selects "$f" "${args[@]}"
}

# probe_refused NEEDLE... -- [VAR=VALUE...]: nothing selected, the error says every NEEDLE
probe_refused() {
  local args=()
  while [[ "$1" != -- ]]; do args+=("$1"); shift; done
  shift
  local f="$WORK/probe-$RANDOM.json"
  env "$@" "$SY" probe --json >"$f"
  "$PY" "$JUDGE" refused "$f" "${args[@]}"
}

probe_cuda1() {
  if [[ "$GPUS" -gt 1 ]]; then probe_selects cuda 1 -- DEVICE=cuda:1
  else probe_refused 'DEVICE=cuda:1' "only $GPUS CUDA device" -- DEVICE=cuda:1
  fi
}

probe_fields() {
  "$SY" probe --json >"$WORK/probe-gpu.json"
  cp "$WORK/probe-gpu.json" "$OUT/probe.json"
  "$SY" probe
  "$PY" "$JUDGE" probe-fields "$WORK/probe-gpu.json"
}

driver_release() { "$SY" probe --json >"$WORK/probe-gpu2.json"; "$PY" "$JUDGE" driver-release "$WORK/probe-gpu2.json"; }

contract_env() { env SWITCHYARD_TEST_PLUGIN_DIR="$WORK/plugins" SWITCHYARD_TEST_MODELS="$MODEL_DIR/test" "$@"; }

# contract_run KIND INCLUDE_RE EXCLUDE_RE [VAR=VALUE...]: the contract tests of KIND's plugin (test names
# end in `_KIND`, one per plugin), those matching INCLUDE_RE and not EXCLUDE_RE; at least one must run.
contract_run() {
  local kind="$1" inc="$2" exc="$3" names=()
  shift 3
  mapfile -t names < <("$CONTRACT" --list 2>/dev/null | sed -n 's/: test$//p' | grep -E "(_|::)$kind\$" |
    grep -E "$inc" | grep -vE "$exc")
  if [[ ${#names[@]} -eq 0 ]]; then echo "no contract test of the $kind plugin matches $inc"; return 1; fi
  echo "== ${#names[@]} contract tests: ${names[*]}"
  contract_env "$@" "$CONTRACT" --exact "${names[@]}" --test-threads 1 --nocapture
}

contract_cpu() {
  contract_run cpu . '^$' 2>&1 | tee "$WORK/contract-cpu.txt"
  local rc=${PIPESTATUS[0]}
  grep -oE 'cpu: tiny_cnn.*' "$WORK/contract-cpu.txt" | sed 's/^/RESULT: contract /'
  return "$rc"
}

contract_cuda_absent() { contract_run cuda . '^$'; }

contract_cuda() {
  local rc
  if [[ "$ORT_CUDA" == 1 ]]; then
    contract_run cuda . '^$' SWITCHYARD_REQUIRE_GPU=1 2>&1 | tee "$WORK/contract-cuda.txt"
    rc=${PIPESTATUS[0]}
  else
    echo "== the contract on the GPU (SWITCHYARD_REQUIRE_GPU=1), all but the ONNX placement tests (below)"
    contract_run cuda . '^onnx_' SWITCHYARD_REQUIRE_GPU=1 2>&1 | tee "$WORK/contract-cuda.txt"
    rc=${PIPESTATUS[0]}
    echo "== the ONNX tests of the CUDA plugin, with this ONNX Runtime (no CUDA provider): not SWITCHYARD_REQUIRE_GPU"
    contract_run cuda '^onnx_' '^$' 2>&1 | tee -a "$WORK/contract-cuda.txt"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
    if grep -q 'tiny_cnn.onnx on CPUExecutionProvider' "$WORK/contract-cuda.txt"; then
      echo "FINDING: the CUDA plugin's ONNX contract model ran on CPUExecutionProvider: $(ort_label) has no CUDA provider (a CPU-only build); its TorchScript model ran on $(grep -o 'tiny_cnn.pt on [^ ]*' "$WORK/contract-cuda.txt" | head -1 | sed 's/tiny_cnn.pt on //; s/:$//')"
    fi
  fi
  grep -oE 'cuda: tiny_cnn.*' "$WORK/contract-cuda.txt" | sed 's/^/RESULT: contract /'
  return "$rc"
}

ort_label() {
  if [[ -n "${ORT_DYLIB_PATH:-}" ]]; then echo "ONNX Runtime $(basename "$ORT_DYLIB_PATH" | sed 's/libonnxruntime.so.//') (bundled)"
  else echo "ONNX Runtime of $PY"; fi
}

# embed NAME DEVICE_PREFIX RUNS_ON_PREFIX DTYPE|- [VAR=VALUE...]
embed() {
  local name="$1" dev="$2" on="$3" dtype="$4" rc=0
  shift 4
  mkdir -p "$EMB"
  env "$@" "$SY" embed "$IMAGES" --texts-file "$TEXTS" --quiet --out "$EMB/$name.jsonl" \
    --metadata "$EMB/$name.meta.json" || rc=$?
  [[ $rc -eq 0 || $rc -eq 3 ]] || return "$rc"   # 3: some inputs are not decodable (the same on every device)
  local tf32=off a
  for a in "$@"; do [[ "$a" == SWITCHYARD_CUDA_TF32=on ]] && tf32=on; done
  if [[ "$dtype" == - ]]; then "$PY" "$JUDGE" embed "$EMB/$name.meta.json" "$dev" "$on"
  else "$PY" "$JUDGE" embed "$EMB/$name.meta.json" "$dev" "$on" "$dtype" "$tf32"; fi
}

# embed_vs_cpu NAME BAR DEVICE_PREFIX RUNS_ON_PREFIX DTYPE|- [VAR=VALUE...]
embed_vs_cpu() {
  local name="$1" bar="$2"
  shift 2
  embed "$name" "$@" || return 1
  "$PY" "$HERE/tools/compare_embeddings.py" "$EMB/cpu.jsonl" "$EMB/$name.jsonl" --min "$bar" --label "$name" \
    | tee "$WORK/$name.cosine"
  local rc=${PIPESTATUS[0]}
  sed 's/^/RESULT: /' "$WORK/$name.cosine"
  return "$rc"
}

clip_cuda_onnx() {
  if [[ "$ORT_CUDA" == 1 ]]; then
    embed_vs_cpu cuda-onnx 0.9999 cuda CUDAExecutionProvider - DEVICE=cuda CLIP_ENGINE=onnx
    return
  fi
  # No CUDA provider in this ONNX Runtime: the CUDA plugin must say its ONNX towers ran on the CPU provider.
  embed_vs_cpu cuda-onnx 0.9999 cuda CPUExecutionProvider - DEVICE=cuda CLIP_ENGINE=onnx || return 1
  echo "FINDING: with DEVICE=cuda, the ONNX CLIP towers ran on CPUExecutionProvider (reported in the run metadata): $(ort_label) has no CUDA provider"
  echo "SKIP: $(ort_label) has no CUDA provider (CPU-only build): the ONNX towers ran on CPUExecutionProvider"
  return 77
}

faces_on() {  # faces_on NAME PROVIDER REF|- [VAR=VALUE...]
  local name="$1" want="$2" ref="$3" rc=0
  shift 3
  mkdir -p "$EMB"
  env "$@" "$SY" embed "$FACES" --faces --quiet --out "$EMB/$name.jsonl" --metadata "$EMB/$name.meta.json" || rc=$?
  [[ $rc -eq 0 || $rc -eq 3 ]] || return "$rc"
  if [[ "$ref" == - ]]; then "$PY" "$JUDGE" faces "$EMB/$name.meta.json" "$EMB/$name.jsonl" "$want"
  else "$PY" "$JUDGE" faces "$EMB/$name.meta.json" "$EMB/$name.jsonl" "$want" "$EMB/$ref.jsonl"; fi
}

faces_cuda() {
  if [[ "$ORT_CUDA" == 1 ]]; then faces_on faces-cuda CUDAExecutionProvider faces-cpu DEVICE=cuda; return; fi
  faces_on faces-cuda CPUExecutionProvider faces-cpu DEVICE=cuda || return 1
  echo "FINDING: with DEVICE=cuda, the face models (ONNX) ran on CPUExecutionProvider: $(ort_label) has no CUDA provider; same faces as on the CPU plugin"
}

faces_no_torch() {
  if [[ "$ORT_CUDA" != 1 ]]; then
    echo "SKIP: $(ort_label) has no CUDA provider, so there is no CUDA provider to load without libtorch"
    return 77
  fi
  faces_on faces-cuda-no-torch CUDAExecutionProvider faces-cpu DEVICE=cpu ONNX_PROVIDERS=cuda
}

# memory_serve DEVICE: libtorch's device memory figures while `switchyard serve` serves CLIP
# (TorchScript float32), and the reserved bytes before and after an idle unload (tools/gpu_check/memory.py).
memory_serve() {
  "$PY" "$HERE/tools/gpu_check/memory.py" --bin "$SY" --images "$HERE/photos/skimage" --device "$1" --ttl 6 \
    --log "$WORK/memory-serve-$1.log" --json "$OUT/memory-$1.json"
}

# TF32 on vs off in float32, on the parity images and texts: the cosine between the two (bar: float16's,
# TF32 keeps float16's 10-bit mantissa), and against the CPU (reported).
tf32_cosine() {
  embed cuda-float32-tf32 cuda cuda: float32 DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float32 SWITCHYARD_CUDA_TF32=on \
    || return 1
  local rc=0
  "$PY" "$HERE/tools/compare_embeddings.py" "$EMB/cuda-float32.jsonl" "$EMB/cuda-float32-tf32.jsonl" --min 0.999 \
    --label "cuda float32 TF32 on vs off" | tee "$WORK/tf32.cosine" || rc=1
  "$PY" "$HERE/tools/compare_embeddings.py" "$EMB/cpu.jsonl" "$EMB/cuda-float32-tf32.jsonl" --min -1 \
    --label "cuda float32 TF32 on vs cpu" | tee -a "$WORK/tf32.cosine"
  sed 's/^/RESULT: /' "$WORK/tf32.cosine"
  return "$rc"
}

# float32 throughput with TF32 off and on (switchyard only, batch 256).
bench_tf32() {
  "$PY" "$HERE/tools/gpu_check/bench.py" --bin "$SY" --model-dir "$MODEL_DIR/clip/ViT-B-32" --photos "$HERE/photos" \
    --work "$WORK/bench-tf32" --device cuda --precisions float32,float32+tf32 --batches 256 --no-python \
    --io-workers "$NPROC" --timeout 45 --json "$OUT/bench-tf32.json"
}

bench() {
  "$PY" "$HERE/tools/gpu_check/bench.py" --bin "$SY" --model-dir "$MODEL_DIR/clip/ViT-B-32" --photos "$HERE/photos" \
    --work "$WORK/bench" --device cuda --precisions float32,float16 --batches 64,256 --io-workers "$NPROC" \
    --timeout 45 --json "$OUT/bench.json"
}

bench_smoke() {  # without a GPU: the benchmark script end to end on the CPU, tiny, to prove it runs (no figures)
  "$PY" "$HERE/tools/gpu_check/bench.py" --bin "$SY" --model-dir "$MODEL_DIR/clip/ViT-B-32" --photos "$HERE/photos" \
    --work "$WORK/bench-smoke" --device cpu --precisions float32 --batches 8 --images 16 --texts 32 \
    --python-images 8 --model-only-images 16 --io-workers "$NPROC" --timeout 120
}

export -f memory_serve tf32_cosine bench_tf32 bench_smoke install_wheels install_switchyard plugin_list small_models wait_export probe_selects probe_refused \
  probe_cuda1 probe_fields driver_release contract_env contract_run contract_cpu contract_cuda_absent contract_cuda ort_label \
  embed embed_vs_cpu clip_cuda_onnx faces_on faces_cuda faces_no_torch bench

# ---------------------------------------------------------------- the run
echo "== switchyard GPU check bundle: $(head -1 "$HERE/MANIFEST.txt" 2>/dev/null)"
echo "   python $("$PY" -c 'import sys,torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)')"
echo "   out $OUT, work $WORK, $NPROC cores, deadline ${DEADLINE} s"

check wheels none 90 "wheels: open_clip_torch, ftfy, wcwidth, regex (pip --no-index --target) and ONNX Runtime for the plugins" "" install_wheels
if [[ "${ORT:-bundle}" == bundle && -s "$WORK/ort.path" ]]; then export ORT_DYLIB_PATH="$(cat "$WORK/ort.path")"; fi
check install none 60 "install: the host package, the CPU and CUDA plugin packages (switchyard plugin install)" "" install_switchyard

if [[ "${STATUS[install]}" == PASS ]]; then
  "$SY" probe --json >"$WORK/probe-first.json" 2>"$WORK/probe-first.err"
  read -r GPUS GPU_WHY < <("$PY" "$JUDGE" gpus "$WORK/probe-first.json")
else
  read -r GPUS GPU_WHY < <("$PY" "$JUDGE" gpus /nonexistent)
fi
export GPUS
if [[ "$GPUS" == 0 ]]; then
  echo "== no NVIDIA GPU here ($GPU_WHY): the checks that need one are skipped"
else
  echo "== $GPUS NVIDIA GPU(s): $GPU_WHY"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"
fi
if [[ -n "${ORT_DYLIB_PATH:-}" ]] && "$PY" "$JUDGE" ort-cuda "$ORT_DYLIB_PATH" >/dev/null; then ORT_CUDA=1; fi
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
  "$PY" -c 'import onnxruntime as o, sys; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() else 1)' 2>/dev/null && ORT_CUDA=1
fi
export ORT_CUDA

check plugins none 60 "plugin list: libtorch found through SWITCHYARD_PYTHON, ONNX Runtime through ORT_DYLIB_PATH" "install" plugin_list
check models none 120 "models: contract test models, face stand-ins, parity images, 300 texts" "" small_models
# The export (about 40 s on 16 cores, 100 s on 2) runs while the checks that need no CLIP model do.
export_limit=$((DEADLINE - (SECONDS - T0) - 10))
((export_limit > 300)) && export_limit=300
[[ "${STATUS[wheels]}" == PASS ]] && export_clip_bg "$export_limit"

check sel-auto gpu 60 "probe: auto selects cuda" "install" probe_selects cuda --
check sel-cpu none 60 "probe: DEVICE=cpu selects cpu" "install" probe_selects cpu -- DEVICE=cpu
check sel-force-cpu none 60 "probe: FORCE_CPU=true selects cpu" "install" probe_selects cpu -- FORCE_CPU=true
check sel-cuda0 gpu 60 "probe: DEVICE=cuda:0 selects cuda (device 0)" "install" probe_selects cuda 0 -- DEVICE=cuda:0
check sel-cuda1 gpu 60 "probe: DEVICE=cuda:1 fails, saying how many devices were found" "install" probe_cuda1
check sel-hidden none 60 "probe: CUDA_VISIBLE_DEVICES= (no GPU visible) leaves auto on cpu, saying why cuda was passed over" \
  "install" probe_selects cpu rejected=cuda -- CUDA_VISIBLE_DEVICES=
check sel-cuda0-hidden none 60 "probe: DEVICE=cuda:0 with no GPU visible is refused with the reason (no silent fallback)" \
  "install" probe_refused 'DEVICE=cuda:0' 'no CUDA device' -- CUDA_VISIBLE_DEVICES= DEVICE=cuda:0
check probe-fields gpu 60 "probe --json: GPU name, memory, compute capability, driver CUDA version, CUDA runtime (vs nvidia-smi)" \
  "install" probe_fields
check driver-release gpu 60 "probe --json: the NVIDIA driver release, as nvidia-smi gives it" "install" driver_release

check contract-cpu none 120 "contract tests on the CPU plugin (real models, PyTorch's output)" "install models" contract_cpu
if [[ "$GPUS" == 0 ]]; then
  check contract-cuda-absent none 60 "contract tests on the CUDA plugin without a GPU: describe, probe, refuse open (Unavailable)" \
    "install models" contract_cuda_absent
fi
check contract-cuda gpu 120 "contract tests on the CUDA plugin running real models on the GPU (SWITCHYARD_REQUIRE_GPU=1)" \
  "install models" contract_cuda

check faces-cpu none 60 "faces end to end on the CPU plugin: detector and recognizer on CPUExecutionProvider" \
  "install models" faces_on faces-cpu CPUExecutionProvider - DEVICE=cpu
check faces-cuda gpu 60 "faces end to end with DEVICE=cuda, on the provider this ONNX Runtime has; same faces as the CPU" \
  "install models faces-cpu" faces_cuda
check faces-cuda-no-torch gpu 60 "faces on ONNX Runtime's CUDA provider with no libtorch in the process (cpu plugin, ONNX_PROVIDERS=cuda)" \
  "install models faces-cpu" faces_no_torch

check export none 300 "CLIP ViT-B-32 exported with random weights (tools/export_clip.py --pretrained none)" "wheels models" wait_export
check clip-cpu none 150 "CLIP on the CPU plugin, TorchScript float32 (the reference for the rest)" "install export" \
  embed cpu cpu cpu float32 DEVICE=cpu CLIP_ENGINE=torchscript
check clip-cpu-onnx none 150 "CLIP on the CPU plugin, ONNX vs TorchScript: cosine >= 0.9999, on CPUExecutionProvider" "clip-cpu" \
  embed_vs_cpu cpu-onnx 0.9999 cpu CPUExecutionProvider - DEVICE=cpu CLIP_ENGINE=onnx
check clip-cuda-f32 gpu 90 "CUDA TorchScript float32 vs CPU: cosine >= 0.9999, towers on cuda:N" "clip-cpu" \
  embed_vs_cpu cuda-float32 0.9999 cuda cuda: float32 DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float32
check clip-cuda-f16 gpu 90 "CUDA TorchScript float16 vs CPU: cosine >= 0.999, towers on cuda:N" "clip-cpu" \
  embed_vs_cpu cuda-float16 0.999 cuda cuda: float16 DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float16
check clip-cuda-bf16 gpu 90 "CUDA TorchScript bfloat16 vs CPU: cosine reported, towers on cuda:N" "clip-cpu" \
  embed_vs_cpu cuda-bfloat16 -1 cuda cuda: bfloat16 DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=bfloat16
check tf32-cosine gpu 90 "CUDA TorchScript float32 with TF32 on vs off: cosine >= 0.999, libtorch reports TF32 on" \
  "clip-cuda-f32" tf32_cosine
check memory gpu 120 "device memory while serving on CUDA (/info, /metrics, nvidia-smi); reserved before and after an idle unload" \
  "install export" memory_serve cuda
if [[ "$GPUS" == 0 ]]; then
  check memory-smoke none 120 "device memory on the CPU plugin: no figures, no series; idle unload and reload work" \
    "install export" memory_serve cpu
fi
check clip-cuda-onnx gpu 120 "CUDA ONNX vs CPU: cosine >= 0.9999, towers on CUDAExecutionProvider" "clip-cpu" clip_cuda_onnx
check bench-tf32 gpu 120 "float32 images/s and texts/s with TF32 off and on (SWITCHYARD_CUDA_TF32), batch 256" \
  "export" bench_tf32
check bench gpu 180 "images/s and texts/s vs open_clip on the same GPU, float32 and float16, batch 64 and 256, GPU memory" \
  "export" bench
if [[ "$GPUS" == 0 ]]; then
  check bench-smoke none 150 "the benchmark script on the CPU, tiny (16 images, 32 texts, batch 8): it runs; no figures" \
    "export" bench_smoke
fi

wait 2>/dev/null
WALL=$((SECONDS - T0))
[[ -s "$OUT/gpu.txt" ]] && GPU_WHY="$(head -1 "$OUT/gpu.txt") ($GPU_WHY)"
"$PY" "$JUDGE" summary "$OUT/results.tsv" "$OUT/summary.json" out="$OUT" gpus="$GPUS" gpu="${GPU_WHY}" \
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" host="$(uname -n) $(uname -m), $NPROC cores" wall_s="$WALL" \
  python="$("$PY" -V 2>&1)" torch="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)" \
  onnxruntime_python="$("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null)" \
  onnxruntime_plugins="$(ort_label)" bundle="$(head -1 "$HERE/MANIFEST.txt" 2>/dev/null)" | tee "$OUT/summary.txt"
exit "${PIPESTATUS[0]}"
