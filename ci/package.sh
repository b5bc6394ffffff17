#!/usr/bin/env bash
# Writes one package per backend for this platform into dist/ (or $1):
#   dist/switchyard-backend-<kind>-<version>-<platform>.tar.gz
#     plugin + torch companion + manifest.json (ABI, version, runtime needs,
#     glibc needed, sha256 of every file), made by `switchyard plugin pack`
#   dist/switchyard-host-<version>-<platform>.tar.gz
#     the switchyard binary + SHA256SUMS
# No file of any package names a path of this machine: the plugins find
# libtorch and ONNX Runtime where they are installed (docs/platform-setup.md).
# Install a package with `switchyard plugin install PACKAGE --plugin-dir DIR`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
out="${1:-$ROOT/dist}"
mkdir -p "$out"
bin="$ROOT/target/release/switchyard"
[[ -x "$bin" ]] || { echo "error: $bin is missing; run ci/build.sh first" >&2; exit 1; }
step "plugin packages -> $out"
for kind in cpu cuda mps; do
  "$bin" plugin pack "$ROOT/target/release/libbackend_${kind}.${DLL_EXT}" --out "$out"
done
version="$("$bin" --version | awk '{print $2}')"
platform="$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)"
[[ "$platform" == darwin-* ]] && platform="macos-${platform#darwin-}"
[[ "$platform" == macos-arm64 ]] && platform=macos-aarch64
host_pkg="$out/switchyard-host-${version}-${platform}.tar.gz"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin" "$stage/switchyard"
(cd "$stage" && sha256sum switchyard > SHA256SUMS 2>/dev/null || shasum -a 256 switchyard > SHA256SUMS)
reproducible=()
tar --version 2>/dev/null | grep -q GNU && reproducible=(--owner=0 --group=0 --numeric-owner --mtime=@0)
tar -C "$stage" ${reproducible[@]+"${reproducible[@]}"} -czf "$host_pkg" switchyard SHA256SUMS
echo "$host_pkg" >&2
# Nothing of this machine's build folders may be in a package.
check_no_build_paths "$out"/switchyard-*.tar.gz
echo "packages checked: none contains $VENV or $ROOT/target" >&2
