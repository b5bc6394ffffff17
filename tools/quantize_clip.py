#!/usr/bin/env python3
"""The opt-in int8 CLIP towers (issue 19): dynamic quantization of an export.

Reads <dir>/visual.onnx and textual.onnx (tools/export_clip.py) and writes
beside them:

  visual.int8.onnx   every MatMul's weights int8, per output channel, the
  textual.int8.onnx  activations quantized per call (ONNX Runtime's
                     DynamicQuantizeMatMul / MatMulInteger); everything else
                     float32 as exported

and an `int8` section in config.json: the settings, each file's sha256, and
how far the int8 towers are from float32 on real inputs: the cosine of each
row's embedding to the float32 tower's, on the bundled sample photos
(skimage / insightface, open_clip's preprocessing) and captions. Nothing
switches to these files by itself: `CLIP_ENGINE=onnx-int8` selects them
(docs/benchmarks.md has the speed and the cosines; on random weights those
say how the kernels behave, not how real weights quantize: run this on a
real export before relying on it).

Skips when config.json's `int8` section matches the float32 files' sha256s
and this script's settings; --force redoes it.

    .venv/bin/python tools/quantize_clip.py models/clip/ViT-B-32
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SETTINGS = {"method": "dynamic", "weight_type": "QInt8", "per_channel": True, "op_types": ["MatMul"], "version": 1}
TOWERS = {"visual": "image", "textual": "text"}


def sha256(path: Path) -> str:
    from clip_common import sha256_file

    return sha256_file(str(path))


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        out = Path(tmp) / dst.name
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=SETTINGS["op_types"])
        os.replace(out, dst)


def session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def sample_inputs(config: dict):
    """Real photos through open_clip's own preprocessing, and captions through its tokenizer."""
    import open_clip
    import torch
    from PIL import Image

    import bench_clip

    with tempfile.TemporaryDirectory() as tmp:
        files = bench_clip.sample_images(tmp, 16, 640)
        _, _, preprocess = open_clip.create_model_and_transforms(config["model"], pretrained=None)
        images = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files]).numpy()
    texts = open_clip.get_tokenizer(config["model"])(bench_clip.captions(16)).numpy().astype(np.int64)
    return {"visual": images, "textual": texts}


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path, help="an export folder, e.g. models/clip/ViT-B-32")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    config_path = args.dir / "config.json"
    if not config_path.is_file():
        print(f"error: {config_path} is missing; export the model first with tools/export_clip.py", file=sys.stderr)
        return 1
    config = json.loads(config_path.read_text())
    sources = {tower: sha256(args.dir / f"{tower}.onnx") for tower in TOWERS}
    done = config.get("int8") or {}
    if (not args.force and done.get("settings") == SETTINGS and done.get("source_sha256") == sources
            and all((args.dir / f"{t}.int8.onnx").is_file()
                    and sha256(args.dir / f"{t}.int8.onnx") == done.get("sha256", {}).get(t) for t in TOWERS)):
        print(f"{args.dir}: int8 towers up to date", file=sys.stderr)
        return 0
    inputs = sample_inputs(config)
    report = {"settings": SETTINGS, "source_sha256": sources, "sha256": {}, "cosine_to_float32": {}}
    for tower, input_name in TOWERS.items():
        src, dst = args.dir / f"{tower}.onnx", args.dir / f"{tower}.int8.onnx"
        quantize(src, dst)
        ref = session(src).run(None, {input_name: inputs[tower]})[0]
        got = session(dst).run(None, {input_name: inputs[tower]})[0]
        cos = row_cosines(ref, got)
        report["sha256"][tower] = sha256(dst)
        report["cosine_to_float32"][tower] = {"min": float(cos.min()), "median": float(np.median(cos)),
                                              "rows": int(cos.size)}
        print(f"{dst}: {dst.stat().st_size / 1e6:.0f} MB (float32 {src.stat().st_size / 1e6:.0f} MB), "
              f"cosine to float32 min {cos.min():.6f} median {np.median(cos):.6f} over {cos.size} rows",
              file=sys.stderr)
    config["int8"] = report
    tmp = config_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, config_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
