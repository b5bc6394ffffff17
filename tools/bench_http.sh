#!/usr/bin/env bash
# HTTP load test of `switchyard serve` (docs/benchmarks.md, "HTTP service"):
# text and image load at 1, 8 and 32 concurrent clients, with batching on and
# off, against the offline throughput of `switchyard embed` on the same
# images. Only 127.0.0.1. Prints JSON lines (also in target/bench-http/).
#
#   bash tools/bench_http.sh            # needs target/release/{switchyard,loadgen} and the CPU plugin
set -euo pipefail
source "$(dirname "$0")/../ci/env.sh"
cd "$ROOT"
out="$ROOT/target/bench-http"
mkdir -p "$out"
bin="$ROOT/target/release"
plugins="$out/plugins"
mkdir -p "$plugins" && ln -sf "$bin/libbackend_cpu.so" "$plugins/libbackend_cpu.so"
images="$out/images"
[ -d "$images" ] || "$bin/loadgen" make-images "$images" --count 64 --width 640 --height 480
results="$out/results.jsonl"
: > "$results"
port="${BENCH_PORT:-3013}"
url="http://127.0.0.1:$port"

step "offline: switchyard embed on the same 64 images (batch 32, 2 io workers)"
for i in 1; do
  "$bin/switchyard" embed "$images" --plugin-dir "$plugins" --batch-size 32 --io-workers 2 2>&1 >/dev/null | grep embedded | tee -a "$out/offline.txt"
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

for mode in on off; do
  flags=(--max-batch-size 32 --max-wait-ms 5)
  [ "$mode" = off ] && flags=(--no-batching)
  step "server, batching $mode: ${flags[*]}"
  "$bin/switchyard" serve --port "$port" --plugin-dir "$plugins" "${flags[@]}" 2> "$out/serve-$mode.log" &
  pid=$!
  until curl -sf "$url/ready" >/dev/null; do sleep 0.2; done
  echo "{\"label\":\"batching=$mode\",\"rss_kb_ready\":$(rss $pid)}" | tee -a "$results"
  for c in 1 8 32; do
    n=$((c == 1 ? 30 : 320))
    "$bin/loadgen" run --url "$url" --mode text --concurrency $c --requests $n --max-seconds 25 --label "batching=$mode" | tee -a "$results"
  done
  for round in 1 2; do
    for c in 1 8 32; do
      [ "$round" = 2 ] && [ "$c" != 32 ] && continue
      n=$((c == 1 ? 8 : 128))
      "$bin/loadgen" run --url "$url" --mode image --images "$images" --concurrency $c --requests $n --max-seconds 30 --label "batching=$mode round=$round" | tee -a "$results"
    done
    echo "{\"label\":\"batching=$mode round=$round\",\"rss_kb\":$(rss $pid)}" | tee -a "$results"
  done
  kill -TERM $pid; wait $pid || true
done
