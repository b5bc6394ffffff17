#!/usr/bin/env bash
# Writes the GPU check bundle, dist/gpu-check/ (or $1): what a run on a bare
# GPU machine needs, for a machine with an NVIDIA GPU and a python3 that has
# torch, but no Rust and no network (docs/platform-setup.md, "The GPU check
# bundle"). At most 60 MiB; every binary stripped.
#
#   run.sh          the check (tools/gpu_check/run.sh); `bash run.sh --out DIR`
#   packages/       the host package and the CPU and CUDA plugin packages, from
#                   ci/package.sh, re-packed with their binaries stripped
#                   (`switchyard plugin pack` writes the manifests anew)
#   bin/contract    the contract test binary (tests/tests/contract.rs), stripped;
#                   it reads SWITCHYARD_TEST_PLUGIN_DIR and SWITCHYARD_TEST_MODELS
#   tools/          the exporter and model makers, the reference scripts the
#                   checks use, tools/gpu_check/ (judge, bench, memory, wheels, images)
#   photos/         the photos the parity images and the face check are made
#                   from (scikit-image's and insightface's data files)
#   wheels/         what that machine lacks, for CPython 3.12 on x86_64 Linux:
#                   open_clip_torch, ftfy, wcwidth, regex, and ONNX Runtime
#                   1.31.1 (its library is what the plugins use there)
#   MANIFEST.txt    the commit, every file's size and sha256, the sizes per part
#
# Builds first (ci/build.sh, a no-op when target/ is up to date), so the
# bundle is the tree as it is. Needs the venv ci/setup.sh made and, the first
# time, PyPI for the wheels (kept in .cache/gpu-bundle/wheels afterwards).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
out="${1:-$ROOT/dist/gpu-check}"
limit_mib=60
py_version=3.12
wheels=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 regex==2026.11.19 onnxruntime==1.31.1)
wheel_cache="$ROOT/.cache/gpu-bundle/wheels"
sy="$ROOT/target/release/switchyard"
bash "$ROOT/ci/build.sh" >&2

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$out"
mkdir -p "$out"/{packages,bin,wheels,tools/reference,tools/gpu_check,photos/skimage,photos/insightface}

step "packages: ci/package.sh, then re-packed with the binaries stripped"
bash "$ROOT/ci/package.sh" "$stage/dist" >&2
for kind in cpu cuda; do
  pkg=("$stage"/dist/switchyard-backend-"$kind"-*.tar.gz)
  mkdir -p "$stage/$kind"
  tar -xzf "${pkg[0]}" -C "$stage/$kind"
  strip --strip-unneeded "$stage/$kind"/*.so
  "$sy" plugin pack "$stage/$kind/libbackend_${kind}.so" --out "$out/packages" >&2
  [[ -f "$out/packages/$(basename "${pkg[0]}")" ]] || { echo "error: re-packing ${pkg[0]} gave another name" >&2; exit 1; }
done
host_pkg=("$stage"/dist/switchyard-host-*.tar.gz)
mkdir -p "$stage/host"
tar -xzf "${host_pkg[0]}" -C "$stage/host"
strip "$stage/host/switchyard"
(cd "$stage/host" && sha256sum switchyard >SHA256SUMS)
tar -C "$stage/host" --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$out/packages/$(basename "${host_pkg[0]}")" \
  switchyard SHA256SUMS
check_no_build_paths "$out"/packages/*.tar.gz

step "the contract test binary"
exe="$(cargo test --release -p switchyard-tests --test contract --no-run --locked --message-format=json 2>"$stage/cargo.err" |
  python -c 'import json,sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "contract" and m.get("executable"):
        print(m["executable"])' | tail -1)"
if [[ ! -x "$exe" ]]; then
  tail -n 30 "$stage/cargo.err" >&2
  echo "error: cargo did not build the contract test binary (cargo test --release -p switchyard-tests --test contract --no-run)" >&2
  exit 1
fi
strip -o "$out/bin/contract" "$exe"
if grep -qaF "$VENV" "$out/bin/contract"; then
  echo "warning: bin/contract names $VENV (only as a default it does not use when SWITCHYARD_TEST_* are set)" >&2
fi

step "tools"
cp tools/export_clip.py tools/clip_common.py tools/make_face_models.py tools/make_test_models.py \
  tools/compare_embeddings.py "$out/tools/"
cp tools/reference/clip_embed.py tools/reference/make_parity_images.py "$out/tools/reference/"
cp tools/gpu_check/judge.py tools/gpu_check/bench.py tools/gpu_check/memory.py tools/gpu_check/wheels.py tools/gpu_check/parity_images.py \
  "$out/tools/gpu_check/"
install -m 0755 tools/gpu_check/run.sh "$out/run.sh"

step "photos (what tools/reference/make_parity_images.py reads, and the face photos)"
sites=("$VENV"/lib/python3*/site-packages)
site="${sites[0]}"
# The files make_parity_images.py opens: `sk / "name"` and `ins / "name"`.
for name in $(grep -oE 'sk / "[^"]+"' tools/reference/make_parity_images.py | cut -d'"' -f2 | sort -u); do
  cp "$site/skimage/data/$name" "$out/photos/skimage/"
done
cp "$site"/insightface/data/images/* "$out/photos/insightface/"

step "wheels for CPython $py_version (cached in ${wheel_cache#"$ROOT"/})"
mkdir -p "$wheel_cache"
for spec in "${wheels[@]}"; do
  name="${spec%%==*}" version="${spec##*==}"
  glob=("$wheel_cache/$(tr '-' '_' <<<"$name")-$version-"*.whl)
  if [[ ! -f "${glob[0]}" ]]; then
    python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py_version" \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$wheel_cache" "$spec" >&2
    glob=("$wheel_cache/$(tr '-' '_' <<<"$name")-$version-"*.whl)
  fi
  cp "${glob[0]}" "$out/wheels/"
done

step "manifest and size"
commit="$(git rev-parse --short=12 HEAD)"
git diff --quiet HEAD -- . 2>/dev/null || commit="$commit+uncommitted"
version="$("$sy" --version | awk '{print $2}')"
{
  echo "switchyard $version GPU check bundle, commit $commit, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo
  echo "size per part (KiB):"
  (cd "$out" && du -sk packages bin wheels tools photos run.sh | sed 's/^/  /')
  echo "total (KiB): $(du -sk "$out" | cut -f1)"
  echo
  echo "files (bytes, sha256):"
  (cd "$out" && find . -type f ! -name MANIFEST.txt | sort | while read -r f; do
    printf '  %10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-64)" "${f#./}"
  done)
} >"$out/MANIFEST.txt"
total_kib="$(du -sk "$out" | cut -f1)"
cat "$out/MANIFEST.txt" >&2
if ((total_kib > limit_mib * 1024)); then
  echo "error: the bundle is $((total_kib / 1024)) MiB, over the ${limit_mib} MiB limit" >&2
  exit 1
fi
echo "$out: $((total_kib / 1024)) MiB ($total_kib KiB)" >&2
