#!/usr/bin/env bash
# Makes the models the tests and the default run use, offline (random
# weights on real architectures). Safe to run twice.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if [[ ! -f models/test/meta.json || tools/make_test_models.py -nt models/test/meta.json ]]; then
  step "tools/make_test_models.py -> models/test"
  python tools/make_test_models.py --out models/test
fi

# CLIP ViT-B-32: the real architecture with seeded random weights (offline).
# Where the internet is reachable, real weights are one command:
#   python tools/export_clip.py --model ViT-B-32 --pretrained laion2b_s34b_b79k --out models
step "tools/export_clip.py -> models/clip/ViT-B-32 (skips when up to date)"
python tools/export_clip.py --model ViT-B-32 --pretrained none --seed 0 --out models
# The opt-in int8 towers (CLIP_ENGINE=onnx-int8), made from that export
# (skips when up to date; with real weights, run it after the real export).
step "tools/quantize_clip.py -> models/clip/ViT-B-32/*.int8.onnx"
python tools/quantize_clip.py models/clip/ViT-B-32

# Face models: buffalo_l's exact signatures, constructed detector + random
# recognizer (offline). Real weights where the internet is reachable:
#   curl -L -o /tmp/buffalo_l.zip https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip
#   unzip -o /tmp/buffalo_l.zip -d models/faces/buffalo_l && rm models/faces/buffalo_l/meta.json
if [[ ! -f models/faces/buffalo_l/meta.json || tools/make_face_models.py -nt models/faces/buffalo_l/meta.json ]]; then
  if [[ -f models/faces/buffalo_l/det_10g.onnx && ! -f models/faces/buffalo_l/meta.json ]]; then
    step "models/faces/buffalo_l holds real weights; leaving them"
  else
    step "tools/make_face_models.py -> models/faces/buffalo_l"
    python tools/make_face_models.py --out models/faces/buffalo_l --force
  fi
fi

# An Immich model cache (ViT-B-32__openai, buffalo_l; random weights) for the
# Immich routes' tests (tests/tests/immich.rs, which also runs this if needed).
# Under target/: derived, about 600 MB, and never mounted as a real cache.
step "tools/make_immich_models.py -> target/immich-cache (skips when up to date)"
python tools/make_immich_models.py --out target/immich-cache
