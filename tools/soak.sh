#!/usr/bin/env bash
# Soak test of `switchyard serve` (docs/benchmarks.md, "Soak"): SOAK_SECONDS
# (default 600) of 32 concurrent clients sending a mix of good requests (texts,
# images raw / multipart / base64, faces, OpenAI embeddings) and bad ones
# (truncated and random images, empty, over-long and malformed texts, wrong
# content type, bad base64, unknown route), every answer checked against the
# status the API promises; the server's RSS sampled every 5 s. Exits non-zero
# on any unexpected answer. Only 127.0.0.1. Prints one JSON line (also in
# target/soak/result.json).
#
#   bash tools/soak.sh                  # needs ci/prepare.sh (ci/test.sh does it)
#   SOAK_SECONDS=60 bash tools/soak.sh  # a short one
set -euo pipefail
source "$(dirname "$0")/../ci/env.sh"
cd "$ROOT"
out="$ROOT/target/soak"
bin="$ROOT/target/release"
plugins="$out/plugins"
mkdir -p "$plugins" && ln -sf "$bin/libbackend_cpu.$DLL_EXT" "$plugins/libbackend_cpu.$DLL_EXT"
images="$out/images"
[ -d "$images" ] || "$bin/loadgen" make-images "$images" --count 32 --width 640 --height 480
port="${SOAK_PORT:-3023}"
url="http://127.0.0.1:$port"
"$bin/switchyard" serve --port "$port" --plugin-dir "$plugins" 2> "$out/serve.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
until curl -sf "$url/ready" >/dev/null; do
  kill -0 $pid 2>/dev/null || { echo "server exited; see $out/serve.log" >&2; exit 1; }
  sleep 0.2
done
# A server that could not bind leaves the port to whoever holds it: make sure
# the one answering is ours (two checkouts' test runs at once collide here).
sleep 0.5
kill -0 $pid 2>/dev/null || { echo "server exited (port $port taken? set SOAK_PORT); see $out/serve.log" >&2; exit 1; }
curl -sf "$url/info" | grep -q "\"pid\":$pid[,}]" \
  || { echo "the server on port $port is not the one this script started (pid $pid); set SOAK_PORT" >&2; exit 1; }
step "soak: ${SOAK_SECONDS:-600} s, ${SOAK_CONCURRENCY:-32} clients, server pid $pid"
"$bin/soak" --url "$url" --pid "$pid" --images "$images" | tee "$out/result.json"
