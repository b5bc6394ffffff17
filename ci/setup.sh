#!/usr/bin/env bash
# One command from a fresh clone to a working switchyard: pinned runtimes,
# release build of the host and the plugins, models, the main job (CLIP
# embeddings of sample photos and captions), then `switchyard probe` showing
# which device it selected and why.
set -euo pipefail
here="$(dirname "$0")"
bash "$here/prepare.sh"
source "$here/env.sh"
sites=("$VENV"/lib/python3*/site-packages)
site="${sites[0]}"
step "switchyard embed (sample photos + captions) -> target/embeddings.jsonl"
"$ROOT/target/release/switchyard" embed "$site/skimage/data" "$site/insightface/data/images" \
  --text "a photo of an astronaut" --text "a cat on a sofa" --out "$ROOT/target/embeddings.jsonl" \
  || [[ $? -eq 3 ]]   # 3: some sample files are not decodable images (reported, not fatal)
step "switchyard probe"
"$ROOT/target/release/switchyard" probe
