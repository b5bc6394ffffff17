#!/usr/bin/env python3
"""Python reference CLIP embedder: the numbers the switchyard host must match.

Computes open_clip's L2-normalized embeddings exactly as the Python service
did, for parity tests and as the baseline for benchmarks:

  images: PIL `Image.open(path).convert("RGB")` -> open_clip's eval preprocess
          (built as create_model_and_transforms builds it) -> model.encode_image
  texts:  open_clip.get_tokenizer(model) -> model.encode_text
  then    torch.nn.functional.normalize(x, dim=-1), all under torch.no_grad().

The model is recreated from `<model-dir>/config.json` (written by
tools/export_clip.py): random weights by seeding exactly as the exporter did
(torch.manual_seed(seed) right before open_clip.create_model; shared code in
tools/clip_common.py), or a pretrained tag by loading it through open_clip.
`--check-weights` additionally loads the exported visual.pt / textual.pt and
compares every weight tensor with the recreated model, so a seed or version
mismatch cannot go unnoticed.

Output: `--out FILE` gets N x embed_dim little-endian float32, row-major, rows in
input order. stdout gets exactly one JSON summary line (count, dim, seconds,
images_per_s or texts_per_s, ...); logs and warnings go to stderr.

Usage:
  .venv/bin/python tools/reference/clip_embed.py --model-dir models/clip/ViT-B-32 \\
      --images a.jpg b.png --out img.f32 [--threads 2] [--batch-size 32] [--check-weights]
  .venv/bin/python tools/reference/clip_embed.py --model-dir models/clip/ViT-B-32 \\
      --texts-file texts.txt --out txt.f32          (one text per line, UTF-8)
  .venv/bin/python tools/reference/clip_embed.py --model-dir models/clip/ViT-B-32 \\
      --texts "a photo of a cat" "a dog" --out txt.f32
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import clip_common as cc  # noqa: E402


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_weights(model_dir: str, model) -> dict:
    """Compare every tensor of visual.pt / textual.pt with the recreated model."""
    out = {}
    ok = True
    for fname, ref_sd in (
        ("visual.pt", model.visual.state_dict()),
        ("textual.pt", cc.TextTower(model).state_dict()),
    ):
        ts = torch.jit.load(os.path.join(model_dir, fname), map_location="cpu")
        sd = ts.state_dict()
        missing = sorted(set(ref_sd) - set(sd))
        extra = sorted(set(sd) - set(ref_sd))
        n_diff = 0
        max_diff = 0.0
        values = 0
        for k in sorted(set(sd) & set(ref_sd)):
            a, b = sd[k].float(), ref_sd[k].float()
            values += a.numel()
            if a.shape != b.shape:
                n_diff += 1
                max_diff = float("inf")
                continue
            if not torch.equal(a, b):
                n_diff += 1
                d = (a - b).abs()
                d = d[torch.isfinite(d)]
                max_diff = max(max_diff, float(d.max()) if d.numel() else float("inf"))
        f_ok = not missing and not extra and n_diff == 0
        ok &= f_ok
        err(f"check-weights {fname}: {len(sd)} tensors, {values:,} values, "
            f"{n_diff} differing (max |diff| {max_diff:.3e}), missing {len(missing)}, extra {len(extra)}"
            f" -> {'IDENTICAL' if f_ok else 'MISMATCH'}")
        out[fname] = {"tensors": len(sd), "differing": n_diff, "missing": len(missing),
                      "extra": len(extra), "max_abs_diff": max_diff, "ok": f_ok}
        del ts, sd
    out["ok"] = ok
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", required=True, help="e.g. models/clip/ViT-B-32 (holds config.json)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", metavar="PATH")
    src.add_argument("--texts-file", metavar="FILE", help="UTF-8, one text per line (empty lines are empty texts)")
    src.add_argument("--texts", nargs="+", metavar="TEXT")
    ap.add_argument("--out", required=True, help="output: N x dim little-endian float32, row-major")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch default)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--autocast", choices=("none", "float16", "bfloat16"), default="none",
                    help="run the towers under torch.autocast with this dtype (GPU benchmarks: open_clip's fp16 path)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="run the first batch this many times, untimed and discarded, before timing (benchmarks)")
    ap.add_argument("--check-weights", action="store_true",
                    help="compare the recreated weights with the exported visual.pt/textual.pt")
    args = ap.parse_args()
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    name, tag, seed = cfg["model"], cfg.get("pretrained", "none"), cfg.get("seed") or 0
    random_w = cc.is_random(tag)

    import open_clip

    ocv, tv = cc.versions()
    if (cfg.get("open_clip_version"), cfg.get("torch_version")) != (ocv, tv):
        err(f"WARNING: {args.model_dir} was exported with open_clip {cfg.get('open_clip_version')} / torch "
            f"{cfg.get('torch_version')}, this is open_clip {ocv} / torch {tv}"
            + ("; random weights may differ, run with --check-weights" if random_w else ""))
    if random_w:
        cc.loud_random_warning(name, seed, "the reference embedder", file=sys.stderr)

    t0 = time.perf_counter()
    model, pp = cc.build_model(name, tag, seed)
    load_s = time.perf_counter() - t0

    # the recreated preprocessing must be what the export recorded
    for k in ("mean", "std", "interpolation", "resize_mode"):
        a, b = pp.get(k), cfg.get(k)
        if isinstance(a, (tuple, list)):
            a = [float(x) for x in a]
        if b is not None and a != b:
            raise SystemExit(f"preprocess {k} mismatch: open_clip {a!r} vs config.json {b!r}")

    weights = None
    if args.check_weights:
        t = time.perf_counter()
        weights = check_weights(args.model_dir, model)
        err(f"check-weights took {time.perf_counter() - t:.1f}s")
        if not weights["ok"]:
            err("check-weights FAILED: the recreated model is not the exported one")
            return 1

    device = torch.device(args.device)
    model = model.to(device)
    dim = int(cfg.get("embed_dim") or model.text_projection.shape[1])
    bs = args.batch_size

    def amp():
        # open_clip's mixed-precision inference: weights stay fp32, matmuls run in the autocast dtype.
        if args.autocast == "none":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=getattr(torch, args.autocast))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if args.warmup > 0:
        with torch.no_grad(), amp():
            for _ in range(args.warmup):
                if args.images:
                    from PIL import Image

                    pre = cc.build_preprocess(pp)
                    b = torch.stack([pre(Image.open(p).convert("RGB")) for p in args.images[:bs]])
                    model.encode_image(b.to(device))
                else:
                    if args.texts_file:
                        with open(args.texts_file, encoding="utf-8") as f:
                            first = f.read().splitlines()[:bs]
                    else:
                        first = list(args.texts)[:bs]
                    if first:
                        model.encode_text(open_clip.get_tokenizer(name)(first).to(device))
                sync()

    chunks = []
    prep_s = 0.0
    model_s = 0.0
    t_start = time.perf_counter()
    with torch.no_grad(), amp():
        if args.images:
            from PIL import Image

            preprocess = cc.build_preprocess(pp)
            kind, items = "images", args.images
            for i in range(0, len(items), bs):
                t = time.perf_counter()
                batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in items[i : i + bs]])
                prep_s += time.perf_counter() - t
                t = time.perf_counter()
                x = model.encode_image(batch.to(device))
                x = F.normalize(x, dim=-1)
                chunks.append(x.float().cpu().numpy())
                sync()
                model_s += time.perf_counter() - t
        else:
            if args.texts_file:
                with open(args.texts_file, encoding="utf-8") as f:
                    items = f.read().splitlines()
            else:
                items = list(args.texts)
            kind = "texts"
            tokenizer = open_clip.get_tokenizer(name)
            for i in range(0, len(items), bs):
                t = time.perf_counter()
                toks = tokenizer(items[i : i + bs])
                prep_s += time.perf_counter() - t
                t = time.perf_counter()
                x = model.encode_text(toks.to(device))
                x = F.normalize(x, dim=-1)
                chunks.append(x.float().cpu().numpy())
                sync()
                model_s += time.perf_counter() - t
    seconds = time.perf_counter() - t_start

    emb = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, dim), np.float32)
    if emb.shape[1] != dim:
        raise SystemExit(f"embedding dim {emb.shape[1]} != config embed_dim {dim}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    emb.astype("<f4", copy=False).tofile(args.out)

    n = int(emb.shape[0])
    summary = {
        "kind": kind,
        "model": name,
        "pretrained": tag,
        "random_weights": random_w,
        "count": n,
        "dim": dim,
        "seconds": round(seconds, 6),
        f"{kind}_per_s": round(n / seconds, 3) if seconds > 0 else None,
        "preprocess_seconds": round(prep_s, 6),
        "model_seconds": round(model_s, 6),
        "model_load_seconds": round(load_s, 3),
        "batch_size": bs,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "autocast": args.autocast,
        "out": args.out,
        "open_clip_version": ocv,
        "torch_version": tv,
    }
    if weights is not None:
        summary["weights_check"] = "identical"
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
