#!/usr/bin/env bash
# Builds the workspace in release: the host binary, the three plugins
# (backend-cpu, backend-cuda, backend-mps) and the failure fixtures, then
# copies the plugins into the plugin folder (plugins/).
# Plugins are libbackend_<kind>.so on Linux, libbackend_<kind>.dylib on macOS.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

[[ -x "$VENV/bin/python" ]] || { echo "error: no venv at $VENV; run ci/setup.sh first" >&2; exit 1; }
bash "$ROOT/ci/setup-nasm.sh"
step "cargo build --release --workspace"
cargo build --release --workspace --locked
mkdir -p "$SWITCHYARD_PLUGIN_DIR"
for kind in cpu cuda mps; do
  file="libbackend_${kind}.${DLL_EXT}"
  install -m 0755 "target/release/$file" "$SWITCHYARD_PLUGIN_DIR/$file"
done
echo "plugins installed in $SWITCHYARD_PLUGIN_DIR" >&2
