#!/usr/bin/env bash
# Plugins that ship, checked as a new machine would see them (run by
# tests/tests/relocated.rs, part of ci/test.sh; Linux, as root):
#   1. ci/package.sh writes the packages (and checks that none holds the
#      build venv's or target/'s path);
#   2. the host package is unpacked and each plugin package installed with
#      `switchyard plugin install` into a fresh folder;
#   3. the runtimes are hard-linked copies of torch/, nvidia/ and
#      onnxruntime/ from site-packages, at another path;
#   4. in a private mount namespace, tmpfs hides the build venv and target/,
#      and with `env -i` (no LD_LIBRARY_PATH, no VIRTUAL_ENV) the installed
#      switchyard runs probe, CLIP on TorchScript and ONNX, and faces, with
#      the runtimes found by each rule (python environment, explicit
#      settings, bundled beside the plugins), then the contract tests run
#      over the installed plugins;
#   5. nothing of the build venv is mapped by any process (probe's report
#      of mapped runtime libraries, run metadata).
# Prints `relocated: N passed, 0 failed` at the end; exits 1 on a failure.
set -euo pipefail
source "$(dirname "$0")/../ci/env.sh"
cd "$ROOT"
contract_bin="${1:?usage: relocated.sh CONTRACT_TEST_BINARY}"

work="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-relocated.XXXXXX")"
trap 'rm -rf "$work"' EXIT
sites=("$VENV"/lib/python3*/site-packages)
site="${sites[0]}"

step "packages (ci/package.sh)"
bash "$ROOT/ci/package.sh" "$work/dist"
mkdir -p "$work/bin" "$work/plugins" "$work/env/lib/python3/site-packages" "$work/bundled"
tar -xzf "$work"/dist/switchyard-host-*.tar.gz -C "$work/bin"
(cd "$work/bin" && sha256sum -c SHA256SUMS)
cp "$contract_bin" "$work/bin/contract"
step "runtimes at another path: hard-linked copies of torch/, nvidia/, onnxruntime/"
for pkg in torch nvidia onnxruntime; do
  cp -al "$site/$pkg" "$work/env/lib/python3/site-packages/$pkg"
  cp -al "$site/$pkg" "$work/bundled/$pkg"
done
models="$ROOT/models"
images="$site/skimage/data"
faces="$site/insightface/data/images"
mkdir -p "$work/images"
cp "$images"/*.png "$images"/*.jpg "$work/images/"
cp -r "$faces" "$work/faces"

# Everything from here runs with the build venv and target/ hidden.
unshare --mount --propagation private bash -s "$work" "$VENV" "$ROOT" "$models" <<'INNER'
set -uo pipefail
work="$1" venv="$2" root="$3" models="$4"
mount -t tmpfs tmpfs "$venv"
mount -t tmpfs tmpfs "$root/target"
passed=0 failed=0
check() {  # check NAME COMMAND...: runs it, keeps its output in $work/logs/NAME
  local name="$1"; shift
  mkdir -p "$work/logs"
  if "$@" >"$work/logs/$name" 2>&1; then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/    /' "$work/logs/$name" | tail -25
  fi
}
bare() { env -i PATH=/usr/bin:/bin HOME="$work" "$@"; }
sy="$work/bin/switchyard"
pyenv=(SWITCHYARD_PYTHON="$work/env" SWITCHYARD_PLUGIN_DIR="$work/plugins" MODEL_DIR="$models")

check venv_hidden bash -c "[ -z \"\$(ls -A '$venv')\" ] && [ -z \"\$(ls -A '$root/target')\" ]"
for pkg in "$work"/dist/switchyard-backend-*.tar.gz; do
  check "install_$(basename "$pkg" .tar.gz)" bare "$sy" plugin install "$pkg" --plugin-dir "$work/plugins"
done
check plugin_list bash -c "env -i PATH=/usr/bin:/bin ${pyenv[*]} '$sy' plugin list | tee /dev/stderr | grep -q 'libtorch .* (found by python: SWITCHYARD_PYTHON='"
check probe_selects_cpu bash -c "env -i PATH=/usr/bin:/bin ${pyenv[*]} '$sy' probe | grep -q '^selected      cpu via $work/plugins/libbackend_cpu.so'"
env -i PATH=/usr/bin:/bin "${pyenv[@]}" "$sy" probe --json >"$work/probe.json" 2>/dev/null
check probe_maps_nothing_of_the_venv bash -c "grep -q '$work/env' '$work/probe.json' && ! grep -q '$venv' '$work/probe.json'"
for engine in torchscript onnx; do
  check "clip_$engine" bare "${pyenv[@]}" CLIP_ENGINE="$engine" "$sy" embed "$work/images" \
    --text "a photo of an astronaut" --out "$work/clip-$engine.jsonl" --quiet
  check "clip_${engine}_metadata_names_the_runtimes" bash -c "grep -q 'python: SWITCHYARD_PYTHON=$work/env' '$work/clip-$engine.meta.json' && ! grep -q '$venv' '$work/clip-$engine.meta.json'"
done
check clip_both_engines_embedded_every_photo bash -c "[ \$(grep -c '\"embedding\"' '$work/clip-torchscript.jsonl') -eq 27 ] && [ \$(grep -c '\"embedding\"' '$work/clip-onnx.jsonl') -eq 27 ]"
check faces bare "${pyenv[@]}" "$sy" embed "$work/faces" --faces --out "$work/faces.jsonl" --quiet
check faces_found bash -c "grep -q '\"faces\"' '$work/faces.jsonl'"
# The explicit settings, and libraries bundled beside the plugins.
torch="$work/env/lib/python3/site-packages/torch"
ort=("$work"/env/lib/python3/site-packages/onnxruntime/capi/libonnxruntime.so.1.*)
check explicit_settings bash -c "env -i PATH=/usr/bin:/bin LIBTORCH='$torch' ORT_DYLIB_PATH='${ort[0]}' SWITCHYARD_PLUGIN_DIR='$work/plugins' MODEL_DIR='$models' CLIP_ENGINE=torchscript '$sy' embed --text hello --out '$work/explicit.jsonl' --quiet && grep -q 'setting: LIBTORCH' '$work/explicit.meta.json'"
cp "$work"/plugins/* "$work/bundled/"
check bundled bash -c "env -i PATH=/usr/bin:/bin SWITCHYARD_PLUGIN_DIR='$work/bundled' MODEL_DIR='$models' CLIP_ENGINE=torchscript '$sy' embed --text hello --out '$work/bundled.jsonl' --quiet && grep -q 'bundled: beside the plugin' '$work/bundled.meta.json'"
check contract_tests_over_installed_plugins bare "${pyenv[@]}" SWITCHYARD_TEST_PLUGIN_DIR="$work/plugins" "$work/bin/contract" --test-threads 2
echo "relocated: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
INNER
