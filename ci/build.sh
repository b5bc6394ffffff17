#!/usr/bin/env bash
# Builds the workspace in release: the host binary, the three plugins
# (backend-cpu, backend-cuda, backend-mps), their torch companions
# (switchyard-torch-<kind>) and the failure fixtures, then copies plugins and
# companions into the plugin folder (plugins/).
# Plugins are libbackend_<kind>.so on Linux, libbackend_<kind>.dylib on macOS;
# companions libswitchyard_torch_<kind>.so / .dylib.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

[[ -x "$VENV/bin/python" ]] || { echo "error: no venv at $VENV; run ci/setup.sh first" >&2; exit 1; }
bash "$ROOT/ci/setup-nasm.sh"
step "cargo build --release --workspace"
cargo build --release --workspace --locked
mkdir -p "$SWITCHYARD_PLUGIN_DIR"
# Each plugin with its torch companion (libtorch support, loaded by the
# plugin from its own folder only when a TorchScript model needs it).
for kind in cpu cuda mps; do
  for file in "libbackend_${kind}.${DLL_EXT}" "libswitchyard_torch_${kind}.${DLL_EXT}"; do
    install -m 0755 "target/release/$file" "$SWITCHYARD_PLUGIN_DIR/$file"
  done
done
# A convenience of this checkout only (never part of a package): the venv's
# runtimes linked beside the plugins, so `target/release/switchyard` finds
# them by the "bundled" rule without an active venv. Packages carry none of
# this; installed plugins find their runtimes by the rules in
# docs/platform-setup.md.
sites=("$VENV"/lib/python3*/site-packages)
for pkg in torch nvidia onnxruntime; do
  [[ -e "${sites[0]}/$pkg" ]] && ln -sfn "${sites[0]}/$pkg" "$SWITCHYARD_PLUGIN_DIR/$pkg"
done
echo "plugins installed in $SWITCHYARD_PLUGIN_DIR (runtimes linked from $VENV)" >&2
