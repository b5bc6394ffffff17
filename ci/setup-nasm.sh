#!/usr/bin/env bash
# The nasm assembler for libjpeg-turbo's x86-64 SIMD kernels (mozjpeg-sys
# feature `nasm_simd`): about 3x faster JPEG decoding, bit-exact with the C
# code. Without nasm the build still works (mozjpeg-sys warns and builds the C
# kernels), so this is best effort: use the system's nasm if there is one,
# else unpack Debian's package into .cache/nasm without root (apt-get
# download + dpkg -x; ci/env.sh puts it on PATH). On arm64 (Apple silicon)
# the NEON kernels need no nasm. Idempotent.
set -euo pipefail
source "$(dirname "$0")/env.sh"

[[ "$(uname -m)" == x86_64 ]] || exit 0
if command -v nasm >/dev/null; then
  echo "nasm: $(command -v nasm) ($(nasm -v))" >&2
  exit 0
fi
dest="$ROOT/.cache/nasm"
if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  step "fetching nasm from Debian's packages into $dest"
  tmp="$(mktemp -d)"
  if (cd "$tmp" && apt-get download nasm >/dev/null 2>&1); then
    mkdir -p "$dest"
    dpkg -x "$tmp"/nasm_*.deb "$dest"
    rm -rf "$tmp"
    echo "nasm: $("$dest/usr/bin/nasm" -v)" >&2
    exit 0
  fi
  rm -rf "$tmp"
fi
echo "warning: no nasm (install it: apt-get install nasm, brew install nasm); JPEG decoding builds without SIMD, about 3x slower, same pixels" >&2
