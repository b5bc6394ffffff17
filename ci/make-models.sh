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
