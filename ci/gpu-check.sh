#!/usr/bin/env bash
# The GPU check, for a Linux machine with an NVIDIA GPU (driver installed,
# `nvidia-smi` works) and a Rust toolchain. Run from a clone: bash ci/gpu-check.sh
#
#   1. sets up with SWITCHYARD_GPU=1 (onnxruntime-gpu), builds, makes the models;
#   2. device selection: auto picks cuda; DEVICE=cpu and FORCE_CPU=true pick cpu;
#      DEVICE=cuda picks cuda; CUDA_VISIBLE_DEVICES="" leaves auto on cpu;
#   3. the contract tests with SWITCHYARD_REQUIRE_GPU=1 (the CUDA plugin must
#      run real models, not be "unavailable", and its ONNX model must run on
#      CUDAExecutionProvider) and the CLIP parity tests (CPU plugin vs open_clip);
#   4. CUDA embeddings against the CPU plugin's on the same images and texts:
#      cosine >= 0.9999 in float32, >= 0.999 in float16 (TorchScript), and the
#      ONNX engine through ONNX Runtime's CUDA provider >= 0.9999; faces (both
#      ONNX models) end to end;
#   4b. the libtorch bridge: TF32 on vs off (cosine), device memory while serving
#      and the reserved bytes released by an idle unload (tools/gpu_check/memory.py);
#   5. images/s and texts/s against open_clip in Python on the same GPU
#      (float32, and float16 autocast) in one run (tools/bench_clip.py).
#
# A CUDA check passes only where each model ran is asserted, not only the
# device label: ONNX Runtime quietly falls back to its CPU provider when
# registering the CUDA one fails (a CUDA library missing), and the device
# would still read cuda:0. TorchScript towers must run on `cuda:N`, ONNX
# models on `CUDAExecutionProvider` (`runs_on` in the run metadata).
#
# Every check runs even when an earlier one failed; logs go to target/gpu-check/.
# Prints a summary and exits 1 if any check failed.
set -euo pipefail
here="$(dirname "$0")"

command -v nvidia-smi >/dev/null || { echo "error: nvidia-smi not found: this check needs an NVIDIA GPU and its driver" >&2; exit 1; }
export SWITCHYARD_GPU=1
bash "$here/setup-venv.sh"
bash "$here/build.sh"
bash "$here/make-models.sh"
source "$here/env.sh"
cd "$ROOT"

# Start from a clean slate: no device settings inherited from the caller.
unset DEVICE FORCE_CPU DTYPE CLIP_ENGINE ONNX_PROVIDERS SWITCHYARD_PLUGINS CUDA_VISIBLE_DEVICES
out="$ROOT/target/gpu-check"
rm -rf "$out" && mkdir -p "$out"
bin="$ROOT/target/release/switchyard"
summary=()
failures=0

# check NAME COMMAND...: runs COMMAND with its output in $out/<n>.log, records PASS or FAIL.
# (Inside `if`, bash ignores set -e, so the functions below return on failure explicitly.)
check() {
  local name="$1" log
  shift
  log="$out/$(printf '%02d' "${#summary[@]}")-$(tr -c 'a-zA-Z0-9' '-' <<<"$name" | cut -c1-60).log"
  step "$name"
  if "$@" >"$log" 2>&1; then
    summary+=("PASS  $name")
  else
    summary+=("FAIL  $name  (log: ${log#"$ROOT"/})")
    failures=$((failures + 1))
    tail -n 20 "$log" >&2
  fi
}

# probe_selects KIND [VAR=VALUE...]: `switchyard probe --json` under those settings selects KIND.
probe_selects() {
  local want="$1"
  shift
  env "$@" "$bin" probe --json >"$out/probe.json" || true   # exit 1 = nothing selected: judged below
  python - "$out/probe.json" "$want" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
sel = report.get("selection") or {}
print(json.dumps({"selection": sel.get("kind"), "reason": sel.get("reason"), "error": report.get("error"),
                  "rejected": [r.get("reason") for r in sel.get("rejected", [])]}, indent=1))
sys.exit(0 if sel.get("kind") == sys.argv[2] else 1)
PY
}

# contract: the contract tests, with the CUDA plugin running real models on the GPU
# (SWITCHYARD_REQUIRE_GPU=1: unavailable, or an ONNX model on the CPU provider, fails them).
contract() {
  SWITCHYARD_REQUIRE_GPU=1 cargo test --release -p switchyard-tests --test contract --locked -- --include-ignored --nocapture 2>&1 \
    | tee "$out/contract.txt" || return 1
  grep -E "^cuda: tiny_cnn" "$out/contract.txt" || true   # where each model ran, and its diff to PyTorch
}

# embed NAME DEVICE_PREFIX RUNS_ON_PREFIX [VAR=VALUE...]: embeds the check's images and texts; the run
# must have used DEVICE_PREFIX, and the CLIP towers must have run on RUNS_ON_PREFIX (`cuda:`,
# `CUDAExecutionProvider`, `cpu`).
embed() {
  local name="$1" want="$2" runs_on="$3" rc=0
  shift 3
  env "$@" "$bin" embed "$out/images" --texts-file "$out/texts.txt" --quiet \
    --out "$out/$name.jsonl" --metadata "$out/$name.meta.json" || rc=$?
  [[ $rc -eq 0 || $rc -eq 3 ]] || return "$rc"   # 3: some inputs are not decodable images (same on every device)
  python - "$out/$name.meta.json" "$want" "$runs_on" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
device, clip = meta["device"]["device"], meta.get("clip") or {}
runs_on = clip.get("runs_on") or ""
print(f"device {device}, engine {clip.get('engine')}, runs on {runs_on}, gpu {meta.get('gpu_name')}")
ok = device.startswith(sys.argv[2]) and runs_on.startswith(sys.argv[3])
if not ok:
    print(f"expected device {sys.argv[2]}* with the towers on {sys.argv[3]}*", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

# embed_matches NAME BAR DEVICE_PREFIX RUNS_ON_PREFIX [VAR=VALUE...]: embeds, then compares with the CPU reference.
embed_matches() {
  local name="$1" bar="$2" want="$3" runs_on="$4"
  shift 4
  embed "$name" "$want" "$runs_on" "$@" || return 1
  python tools/compare_embeddings.py "$out/cpu.jsonl" "$out/$name.jsonl" --min "$bar" --label "$name" | tee "$out/$name.cosine.txt"
}

# faces_on NAME PROVIDER [VAR=VALUE...]: faces end to end on the check's images; the detector and
# the recognizer (both ONNX) must have run on PROVIDER.
faces_on() {
  local name="$1" want="$2" rc=0
  shift 2
  env "$@" "$bin" embed "$out/images" --faces --quiet \
    --out "$out/$name.jsonl" --metadata "$out/$name.meta.json" || rc=$?
  [[ $rc -eq 0 || $rc -eq 3 ]] || return "$rc"
  python - "$out/$name.meta.json" "$want" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
faces = meta.get("faces") or {}
det, rec = faces.get("detector_device"), faces.get("recognizer_device")
print(f"device {meta['device']['device']}, detector on {det}, recognizer on {rec}")
sys.exit(0 if det == sys.argv[2] and rec == sys.argv[2] else 1)
PY
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
"$bin" probe | tee "$out/probe.txt" || true   # the human table, for the log; judged by the checks below

# 2. device selection
check "probe: auto selects cuda" probe_selects cuda
check "probe: DEVICE=cpu selects cpu" probe_selects cpu DEVICE=cpu
check "probe: FORCE_CPU=true selects cpu" probe_selects cpu FORCE_CPU=true
check "probe: DEVICE=cuda selects cuda" probe_selects cuda DEVICE=cuda
check "probe: CUDA_VISIBLE_DEVICES= (no GPU visible) selects cpu" probe_selects cpu CUDA_VISIBLE_DEVICES=

# 3. tests
check "contract tests (cuda plugin on the GPU)" contract
check "CLIP parity tests (CPU plugin vs open_clip)" \
  cargo test --release -p switchyard-tests --test clip_embed --test clip_preprocess --test clip_tokenizer --locked

# 4. CUDA vs CPU embeddings: the parity images and a few hundred captions.
python tools/reference/make_parity_images.py "$out/images" >/dev/null
python - "$out/texts.txt" <<'PY'
import sys
things = ["cat", "dog", "red car", "mountain lake", "birthday cake", "crowd at a concert", "café in Paris", "东京的街道", "🐶 puppy"]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(256):
        f.write(f"a photo of a {things[i % len(things)]}, number {i}\n")
PY
check "embed on cpu (the reference; TorchScript float32)" embed cpu cpu cpu DEVICE=cpu CLIP_ENGINE=torchscript
check "cuda TorchScript float32 vs cpu: cosine >= 0.9999, towers on cuda:N" \
  embed_matches cuda-float32 0.9999 cuda cuda: DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float32
check "cuda TorchScript float16 vs cpu: cosine >= 0.999, towers on cuda:N" \
  embed_matches cuda-float16 0.999 cuda cuda: DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float16
check "cuda ONNX vs cpu: cosine >= 0.9999, towers on CUDAExecutionProvider (not the CPU provider)" \
  embed_matches cuda-onnx 0.9999 cuda CUDAExecutionProvider DEVICE=cuda CLIP_ENGINE=onnx
check "cuda faces: detector and recognizer on CUDAExecutionProvider" \
  faces_on faces-cuda CUDAExecutionProvider DEVICE=cuda
# The CPU plugin maps no libtorch for ONNX models, so here ONNX Runtime's CUDA provider finds its
# CUDA libraries only through the preload in engine/src/providers.rs, not through libtorch's.
check "ONNX Runtime's CUDA provider with no libtorch in the process (cpu plugin, ONNX_PROVIDERS=cuda)" \
  faces_on faces-cuda-no-torch CUDAExecutionProvider DEVICE=cpu ONNX_PROVIDERS=cuda

# The libtorch bridge: TF32 on vs off in float32 (bar: float16's), and libtorch's device memory
# while serving and across an idle unload (tools/gpu_check/memory.py, also in the GPU bundle).
tf32() {
  embed cuda-float32-tf32 cuda cuda: DEVICE=cuda CLIP_ENGINE=torchscript DTYPE=float32 SWITCHYARD_CUDA_TF32=on || return 1
  python tools/compare_embeddings.py "$out/cuda-float32.jsonl" "$out/cuda-float32-tf32.jsonl" --min 0.999 \
    --label "cuda float32 TF32 on vs off" | tee "$out/cuda-float32-tf32.cosine.txt"
}
check "cuda TorchScript float32 with SWITCHYARD_CUDA_TF32=on vs off: cosine >= 0.999" tf32
mkdir -p "$out/memory-images"
cp "$VENV"/lib/python3*/site-packages/skimage/data/{astronaut.png,coffee.png,chelsea.png,rocket.jpg} "$out/memory-images/"
check "device memory while serving on cuda (/info, /metrics), reserved before and after an idle unload" \
  python tools/gpu_check/memory.py --bin "$bin" --images "$out/memory-images" --device cuda --ttl 6 \
  --log "$out/memory-serve.log" --json "$out/memory.json"

# bench: tools/bench_clip.py, its table kept for the summary.
bench() {
  python tools/bench_clip.py "$@" | tee "$out/bench.txt"
}

# 5. speed against open_clip on the same GPU, float32 and float16 (autocast) in one run.
check "benchmark vs open_clip on the GPU (tools/bench_clip.py)" \
  bench --device cuda --precisions float32,float16 --engines torchscript,onnx \
  --count 256 --texts 1024 --batch-size 64 --io-workers "$(nproc)" --repeat 3

# Summary.
{
  echo
  echo "== GPU check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "gpu: $(cat "$out/gpu.txt")"
  printf '%s\n' "${summary[@]}"
  cat "$out"/*.cosine.txt 2>/dev/null || true
  if [[ -f "$out/bench.txt" ]]; then cat "$out/bench.txt"; fi
  echo "$(( ${#summary[@]} - failures )) passed, $failures failed"
} | tee "$out/summary.txt"
[[ $failures -eq 0 ]]
