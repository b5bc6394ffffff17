# shellcheck shell=bash
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
export PATH="$VENV/bin:$HOME/.cargo/bin:$ROOT/.cache/nasm/usr/bin:$PATH"
# tch 0.24's build script asks the venv's python where torch 2.11.0 is.
export LIBTORCH_USE_PYTORCH=1
# libtorch's headers put their own path into assertion messages (__FILE__),
# which would carry this venv's path into every companion: map it away, so no
# file of a package names a path of the machine that built it.
case " ${CXXFLAGS:-} " in
  *" -ffile-prefix-map=$VENV/=venv/ "*) ;;
  *) export CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }-ffile-prefix-map=$VENV/=venv/" ;;
esac
# Shared-library suffix of the plugins on this platform. Nothing of the venv
# is baked into any plugin: they find libtorch and ONNX Runtime at load time
# (VIRTUAL_ENV above is the Python-environment rule; see docs/platform-setup.md).
if [[ "$(uname -s)" == Darwin ]]; then
  export DLL_EXT=dylib
else
  export DLL_EXT=so
fi
export SWITCHYARD_PLUGIN_DIR="${SWITCHYARD_PLUGIN_DIR:-$ROOT/plugins}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*" >&2; }
# SHA-256 of a file, hex: GNU coreutils on Linux, shasum on macOS.
sha256() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}
# Fails when any package names a build folder of this machine (the venv,
# target/): what ships must not depend on where it was built.
check_no_build_paths() {
  local pkg needle
  for pkg in "$@"; do
    for needle in "$VENV" "$ROOT/target"; do
      if tar -xzOf "$pkg" | grep -qaF "$needle"; then
        echo "error: $pkg contains the build path $needle" >&2
        return 1
      fi
    done
  done
}
