# Sourced by every ci/ script: the one place that says where the pinned
# runtimes live, so nobody sets LD_LIBRARY_PATH or LIBTORCH by hand.
#
#   .venv/          torch 2.11.0, onnxruntime 1.31.1, open_clip, insightface (ci/requirements.txt)
#   target/release/ the host binary, the three plugins, the failure fixtures
#   plugins/        the plugin folder the README's commands use
#   models/         models made offline by tools/ (random weights on real architectures)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export VENV="$ROOT/.venv"
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"
# tch 0.24's build script asks the venv's python where torch 2.11.0 is.
export LIBTORCH_USE_PYTORCH=1
# Baked into the plugins as the default ONNX Runtime library (ORT_DYLIB_PATH overrides at run time).
SWITCHYARD_ORT_DYLIB="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -n 1 || true)"
export SWITCHYARD_ORT_DYLIB
export SWITCHYARD_PLUGIN_DIR="${SWITCHYARD_PLUGIN_DIR:-$ROOT/plugins}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*" >&2; }
