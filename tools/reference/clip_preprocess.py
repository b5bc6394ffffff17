"""open_clip's image preprocessing, run on files: the reference the Rust
preprocessing (`host/src/clip/preprocess.rs`) is compared with.

For each image this does exactly what the Python service did:
`Image.open(path).convert("RGB")` then open_clip's eval transform, built by
open_clip's own `image_transform` (the function `create_model_and_transforms`
uses; no model weights are needed). It writes into OUT_DIR:

    <stem>.rgb     the decoded RGB pixels, uint8 HWC (to tell decode drift from
                   resize drift)
    <stem>.f32     the preprocessed tensor, little-endian float32, CHW
    manifest.json  {"config": {...}, "images": [{"path", "stem", "width",
                   "height", "rgb", "tensor", "shape"}]}

Usage: clip_preprocess.py OUT_DIR IMAGE... [--image-size 224]
       [--resize-mode shortest|longest|squash] [--interpolation bicubic|bilinear]
Defaults are ViT-B-32's: 224, shortest, bicubic, OpenAI mean/std.
"""

from __future__ import annotations

import os
import sys

# Sibling scripts here (any named like a stdlib module) must not shadow the standard library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--resize-mode", default="shortest", choices=["shortest", "longest", "squash"])
    ap.add_argument("--interpolation", default="bicubic", choices=["bicubic", "bilinear"])
    args = ap.parse_args()

    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.transform import image_transform

    preprocess = image_transform(
        args.image_size,
        is_train=False,
        mean=OPENAI_DATASET_MEAN,
        std=OPENAI_DATASET_STD,
        resize_mode=args.resize_mode,
        interpolation=args.interpolation,
    )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for path in args.images:
        stem = path.name.replace(".", "_")
        img = Image.open(path).convert("RGB")
        rgb = np.asarray(img, dtype=np.uint8)
        tensor = preprocess(img).numpy().astype("<f4")
        (args.out_dir / f"{stem}.rgb").write_bytes(rgb.tobytes())
        (args.out_dir / f"{stem}.f32").write_bytes(tensor.tobytes())
        entries.append(
            {
                "path": str(path.resolve()),
                "stem": stem,
                "width": img.width,
                "height": img.height,
                "rgb": f"{stem}.rgb",
                "tensor": f"{stem}.f32",
                "shape": list(tensor.shape),
            }
        )

    config = {
        "image_size": args.image_size,
        "mean": list(OPENAI_DATASET_MEAN),
        "std": list(OPENAI_DATASET_STD),
        "interpolation": args.interpolation,
        "resize_mode": args.resize_mode,
    }
    manifest = {"config": config, "images": entries, "transform": repr(preprocess)}
    (args.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(entries)} reference tensors to {args.out_dir}")


if __name__ == "__main__":
    main()
