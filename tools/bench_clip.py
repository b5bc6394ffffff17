#!/usr/bin/env python3
"""Benchmark: CLIP images/s and texts/s, switchyard vs the Python reference.

One run, same machine, same weights (models/clip/<model>), same inputs, same
thread count:
  switchyard   `switchyard embed` through the selected plugin, once per engine
               (TorchScript and ONNX), decode/preprocess overlapped with
               inference on --io-workers threads.
  python       tools/reference/clip_embed.py: PIL open + convert("RGB") +
               open_clip preprocess + model.encode_image, as the service did.

Inputs: --images (files or folders) or, by default, a set of real photos from
the venv (scikit-image, insightface) saved as 640-pixel JPEGs; and --texts
captions. Each side reports its own steady-state throughput (model loading
and warm-up excluded); the table shows the median of --repeat runs and the
ratio ours / python. Not a test: nothing is asserted.

On a GPU (`--device cuda`, or `cuda:N`), `--precisions float32,float16` measures
each precision: switchyard with DTYPE=<precision>, open_clip in fp32 or under
torch.autocast(<precision>) on the same device; each row's ratio is to the
Python row of the same precision. Without --device, switchyard picks its device
as usual and Python runs on the CPU (the CPU comparison of docs/benchmarks.md).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample_images(out_dir: str, count: int, long_side: int) -> list[str]:
    from PIL import Image

    site = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages"))[0]
    sources = sorted(
        glob.glob(os.path.join(site, "skimage/data/*.png"))
        + glob.glob(os.path.join(site, "skimage/data/*.jpg"))
        + glob.glob(os.path.join(site, "insightface/data/images/*.jpg"))
    )
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        src = sources[i % len(sources)]
        dst = os.path.join(out_dir, f"img_{long_side}_{i:03d}.jpg")
        if not os.path.exists(dst):
            im = Image.open(src).convert("RGB")
            scale = long_side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
            im.save(dst, quality=90)
        paths.append(dst)
    return paths


def captions(n: int) -> list[str]:
    things = ["cat", "dog", "beach at sunset", "birthday party", "mountain hike", "city street at night", "old car", "wedding"]
    out = []
    for i in range(n):
        out.append(f"a photo of a {things[i % len(things)]} number {i}, taken with a phone")
    return out


def on_gpu(args) -> bool:
    return bool(args.device) and args.device != "cpu"


def run_ours(args, engine: str, precision: str, images: list[str], texts_file: str) -> dict:
    env = dict(os.environ, CLIP_ENGINE=engine, SWITCHYARD_THREADS=str(args.threads))
    if args.device:
        env["DEVICE"] = args.device
    if on_gpu(args):
        env["DTYPE"] = precision  # TorchScript's float type on GPUs (float16 is the CUDA default)
    cmd = [args.bin, "embed", *images, "--texts-file", texts_file, "--out", os.devnull,
           "--batch-size", str(args.batch_size), "--io-workers", str(args.io_workers)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"switchyard embed failed: {res.stderr}")
    line = [l for l in res.stderr.splitlines() if l.startswith("embedded ")][-1]
    # "... : 3.50 images/s, 1.4 texts/s; ..."
    rates = line.split(": ", 1)[1]
    images_per_s = float(rates.split(" images/s")[0])
    texts_per_s = float(rates.split(", ")[1].split(" texts/s")[0])
    return {"images_per_s": images_per_s, "texts_per_s": texts_per_s}


def run_python(args, precision: str, images: list[str], texts_file: str) -> dict:
    py = os.path.join(ROOT, ".venv/bin/python")
    base = [py, os.path.join(ROOT, "tools/reference/clip_embed.py"), "--model-dir", args.model_dir,
            "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--warmup", "1", "--out", os.devnull,
            "--device", args.device or "cpu", "--autocast", "none" if precision == "float32" else precision]
    out = {}
    for kind, extra in (("images", ["--images", *images]), ("texts", ["--texts-file", texts_file])):
        res = subprocess.run(base + extra, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"python reference failed: {res.stderr}")
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        out[f"{kind}_per_s"] = summary[f"{kind}_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/switchyard"))
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models/clip/ViT-B-32"))
    ap.add_argument("--images", nargs="*", help="image files (default: 32 real photos as 640 px JPEGs)")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--long-side", type=int, default=640)
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--io-workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engines", default="torchscript,onnx")
    ap.add_argument("--device", help="DEVICE for switchyard and the torch device for Python (cpu, cuda, cuda:N, mps); "
                                     "default: switchyard auto-selects, Python on the CPU")
    ap.add_argument("--precisions", default="float32",
                    help="comma list of float32, float16, bfloat16 (GPU only: switchyard DTYPE, Python autocast)")
    args = ap.parse_args()
    precisions = args.precisions.split(",")
    if precisions != ["float32"] and not on_gpu(args):
        ap.error("--precisions other than float32 need --device cuda (or cuda:N, mps)")

    work = os.path.join(ROOT, "target/bench")
    images = args.images or sample_images(os.path.join(work, "images"), args.count, args.long_side)
    texts_file = os.path.join(work, "texts.txt")
    os.makedirs(work, exist_ok=True)
    with open(texts_file, "w", encoding="utf-8") as f:
        f.write("\n".join(captions(args.texts)) + "\n")

    # Row names carry the precision only when there is more than one, so CPU output is unchanged.
    def tag(p: str) -> str:
        return f" {p}" if len(precisions) > 1 or p != "float32" else ""

    results = {}  # row -> (precision, runs)
    for _ in range(args.repeat):
        for p in precisions:
            for engine in args.engines.split(","):
                row = results.setdefault(f"switchyard {engine}{tag(p)}", (p, []))
                row[1].append(run_ours(args, engine, p, images, texts_file))
            results.setdefault(f"python open_clip{tag(p)}", (p, []))[1].append(run_python(args, p, images, texts_file))

    med = {k: (p, {m: statistics.median(r[m] for r in runs) for m in ("images_per_s", "texts_per_s")})
           for k, (p, runs) in results.items()}
    print(f"CLIP {os.path.basename(args.model_dir)}: {len(images)} images ({args.long_side} px JPEG), {args.texts} texts, "
          f"threads={args.threads}, batch={args.batch_size}, device={args.device or 'auto (python: cpu)'}, "
          f"median of {args.repeat}")
    print(f"{'pipeline':<32}{'images/s':>10}{'x python':>10}{'texts/s':>10}{'x python':>10}")
    for k, (p, v) in med.items():
        py = med[f"python open_clip{tag(p)}"][1]
        print(f"{k:<32}{v['images_per_s']:>10.2f}{v['images_per_s'] / py['images_per_s']:>10.2f}"
              f"{v['texts_per_s']:>10.1f}{v['texts_per_s'] / py['texts_per_s']:>10.2f}")


if __name__ == "__main__":
    main()
