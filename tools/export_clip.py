#!/usr/bin/env python3
"""Export an open_clip CLIP model for the switchyard plugins (TorchScript + ONNX).

Writes <out>/clip/<model>/:
  visual.pt        TorchScript (trace of tools/clip_common.VisualTower), image tower only
  textual.pt       TorchScript (trace of tools/clip_common.TextTower), text tower only
  visual.onnx      ONNX, input  `image` float32 [B,3,H,W], output `embedding` [B,D]
  textual.onnx     ONNX, input  `text`  int64   [B,L],     output `embedding` [B,D]
                   (L <= 77: callers may cut the zero padding after the last EOT)
  config.json      model / preprocessing / tokenizer facts, versions, sha256s,
                   and the verification numbers of this export
  bpe_simple_vocab_16e6.txt.gz   open_clip's BPE vocabulary (the tokenizer file)

Outputs are NOT L2-normalized (`normalized: false` in config.json); the host
normalizes. The batch axis is dynamic in every file, and so is the text
tower's sequence axis (config.json: `text_dynamic_length: true`).

One TorchScript file per tower serves float32, float16 and bfloat16
(config.json: `torchscript_dtypes`). The towers are open_clip's forward passes
re-stated without dtype casts (tools/clip_common.py says why): a trace of
open_clip's own modules freezes every `x.to(orig_type)` into a cast to
float32, and a module converted to half precision then fails with "mixed
dtype". Without them the torch backend converts the weights and the float
inputs to the configured dtype at load and the same graph runs in it. Chosen
over a trace per dtype (visual.float16.pt, ...): those would add about 300 MB
per dtype to the folder (ViT-B-32's float32 towers are 350 + 254 MB) and two
more traces and verifications to every export, for no gain: a trace made in
float16 holds the same ops with other cast constants. The same traces hold no
arithmetic on shapes (head counts and widths are Python ints), so a GPU never
syncs with the host on a shape. The verification checks both: every
TorchScript file is read back and `clip_common.trace_faults` must find no
constant dtype and no size arithmetic in its graph, and each tower, converted
to float16 and to bfloat16, must match open_clip in float32 at cosine >=
0.999 (the figures land in config.json).

Weights:
  --pretrained none    (default; what works offline) the real architecture with
                       random weights: torch.manual_seed(seed) right before
                       open_clip.create_model(model, pretrained=None), so the
                       weights are reproducible from (model, seed, open_clip and
                       torch versions). A loud warning is printed: embeddings are
                       meaningless, fine for tests and benchmarks only.
  --pretrained <tag>   real weights, downloaded by open_clip (needs internet), e.g.
                           python tools/export_clip.py --model ViT-B-32 --pretrained laion2b_s34b_b79k

After exporting, the script reloads every file from disk (torch.jit.load and
onnxruntime) and compares against open_clip's own model.encode_image /
model.encode_text at batch sizes 1 and 3; it fails (exit 1, output not
installed) if any row's cosine similarity is below 0.99999 (0.999 for the
TorchScript towers run in float16 and bfloat16), or if a trace holds a
dtype constant or shape arithmetic (above).

If <out>/clip/<model>/config.json already describes the same export (model,
tag, seed, open_clip/torch versions, opset, format version) and every file's
sha256 matches, nothing is done; --force re-exports. The export is built in a
temporary sibling directory and swapped in only after verification passes.

Usage:
  .venv/bin/python tools/export_clip.py --model ViT-B-32 --pretrained none --seed 0 --out models
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import clip_common as cc  # noqa: E402

COSINE_MIN = 0.99999
# float16 / bfloat16 TorchScript vs open_clip in float32 (bfloat16 keeps 8 bits of mantissa)
HALF_COSINE_MIN = 0.999
HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
FILES = ("visual.pt", "textual.pt", "visual.onnx", "textual.onnx", cc.TOKENIZER_FILE)

VERIFY_TEXTS = [
    "a photo of a cat",
    "A diagram of the ONNX Runtime execution providers, drawn on a whiteboard!",
    # a long row: 62 tokens with start and end, so EOT lands at position 61 (rows
    # longer than 77 tokens are truncated by the tokenizer, tested host side)
    " ".join(["photograph"] * 40) + " of many words repeated " * 5,
]


def log(msg: str) -> None:
    print(msg, flush=True)


def export_key(args) -> dict:
    ocv, tv = cc.versions()
    return {
        "model": args.model,
        "pretrained": cc.normalize_tag(args.pretrained),
        "seed": int(args.seed) if cc.is_random(args.pretrained) else None,
        "open_clip_version": ocv,
        "torch_version": tv,
        "onnx_opset": args.opset,
        "export_format_version": cc.EXPORT_FORMAT_VERSION,
    }


def up_to_date(dst: str, key: dict) -> bool:
    cfg_path = os.path.join(dst, "config.json")
    if not os.path.isfile(cfg_path):
        return False
    try:
        with open(cfg_path) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return False
    for k, v in key.items():
        if cfg.get(k) != v:
            log(f"existing export differs in {k}: {cfg.get(k)!r} != {v!r}; re-exporting")
            return False
    shas = cfg.get("sha256", {})
    for name in FILES:
        p = os.path.join(dst, name)
        if not os.path.isfile(p) or name not in shas:
            log(f"existing export lacks {name}; re-exporting")
            return False
        if cc.sha256_file(p) != shas[name]:
            log(f"existing export: sha256 of {name} does not match config.json; re-exporting")
            return False
    return True


def text_batch(tokenizer, n: int) -> torch.Tensor:
    texts = (VERIFY_TEXTS * ((n + len(VERIFY_TEXTS) - 1) // len(VERIFY_TEXTS)))[:n]
    return tokenizer(texts)


def random_tokens(n: int, ctx: int, vocab: int, gen: torch.Generator) -> torch.Tensor:
    """SOT + random ids + EOT + zero padding, random lengths (argmax = EOT)."""
    sot, eot = vocab - 2, vocab - 1
    out = torch.zeros(n, ctx, dtype=torch.long)
    for i in range(n):
        length = int(torch.randint(1, ctx - 1, (1,), generator=gen))
        out[i, 0] = sot
        out[i, 1 : 1 + length] = torch.randint(1, sot, (length,), generator=gen)
        out[i, 1 + length] = eot
    return out


def compare(name: str, got: np.ndarray, ref: np.ndarray, bar: float = COSINE_MIN) -> dict:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise SystemExit(f"VERIFY FAILED {name}: shape {got.shape} != reference {ref.shape}")
    diff = float(np.max(np.abs(got - ref)))
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    cmin = float(np.min(cos))
    ok = bool(np.all(np.isfinite(got))) and cmin >= bar
    log(f"  {name:<36} max|diff|={diff:.3e}  min cosine={cmin:.9f} (1-cos={1 - cmin:.1e})"
        f"  ref max|x|={np.max(np.abs(ref)):.3f}  {'ok' if ok else 'FAIL'}")
    return {"max_abs_diff": diff, "min_cosine": cmin, "median_cosine": float(np.median(cos)), "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="none", help="'none' (seeded random weights) or an open_clip tag")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="models")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0 = default)")
    ap.add_argument("--force", action="store_true", help="re-export even if an identical export exists")
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random_w = cc.is_random(args.pretrained)
    tag = cc.normalize_tag(args.pretrained)
    dst = os.path.abspath(os.path.join(args.out, "clip", args.model))
    key = export_key(args)

    t_all = time.perf_counter()
    if not args.force and up_to_date(dst, key):
        log(f"{dst}: up to date ({args.model}, pretrained={tag}"
            f"{', seed=%d' % args.seed if random_w else ''}); nothing to do (--force to redo)"
            f" [{time.perf_counter() - t_all:.1f}s]")
        if random_w:
            cc.loud_random_warning(args.model, args.seed, "this export")
        return 0

    if random_w:
        cc.loud_random_warning(args.model, args.seed, "this export")

    import onnx
    import onnxruntime as ort
    import open_clip

    timings = {}
    t = time.perf_counter()
    model, pp = cc.build_model(args.model, args.pretrained, args.seed)
    tokenizer = open_clip.get_tokenizer(args.model)
    timings["create_model_s"] = time.perf_counter() - t
    log(f"created {args.model} (pretrained={tag}) in {timings['create_model_s']:.1f}s")

    ctx = int(model.context_length)
    vocab = int(model.vocab_size)
    size = pp["size"]
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise SystemExit(f"non-square image size {size} not supported by the host pipeline")
        size = size[0]
    size = int(size)
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
        raise SystemExit(f"{args.model} uses {type(tokenizer).__name__}; only the CLIP BPE tokenizer is supported")

    visual = cc.VisualTower(model).eval()
    textual = cc.TextTower(model).eval()

    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{args.model}.tmp")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)

    gen = torch.Generator().manual_seed(1234)
    ex_img = torch.randn(2, 3, size, size, generator=gen)
    ex_txt = text_batch(tokenizer, 2)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        ts_v = torch.jit.trace(visual, ex_img, check_trace=False)
        ts_v.save(os.path.join(tmp, "visual.pt"))
        timings["trace_visual_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ts_t = torch.jit.trace(textual, ex_txt, check_trace=False)
        ts_t.save(os.path.join(tmp, "textual.pt"))
        timings["trace_textual_s"] = time.perf_counter() - t
        log(f"traced TorchScript: visual {timings['trace_visual_s']:.1f}s, textual {timings['trace_textual_s']:.1f}s")
        del ts_v, ts_t

        for name, mod, ex, in_name in (
            ("visual", visual, ex_img, "image"),
            ("textual", textual, ex_txt, "text"),
        ):
            t = time.perf_counter()
            path = os.path.join(tmp, f"{name}.onnx")
            torch.onnx.export(
                mod,
                (ex,),
                path,
                dynamo=False,
                export_params=True,
                opset_version=args.opset,
                do_constant_folding=True,
                input_names=[in_name],
                output_names=["embedding"],
                dynamic_axes={
                    in_name: {0: "batch", 1: "seq"} if name == "textual" else {0: "batch"},
                    "embedding": {0: "batch"},
                },
            )
            onnx.checker.check_model(path)
            timings[f"onnx_{name}_s"] = time.perf_counter() - t
            log(f"exported ONNX {name} (opset {args.opset}) in {timings[f'onnx_{name}_s']:.1f}s")

    shutil.copyfile(cc.default_tokenizer_path(), os.path.join(tmp, cc.TOKENIZER_FILE))

    # ---------------------------------------------------------------- verify
    log("verifying (files reloaded from disk vs open_clip encode_image/encode_text):")
    t = time.perf_counter()
    results = {}
    all_ok = True
    so = ort.SessionOptions()
    if args.threads > 0:
        so.intra_op_num_threads = args.threads
    sess_v = ort.InferenceSession(os.path.join(tmp, "visual.onnx"), so, providers=["CPUExecutionProvider"])
    sess_t = ort.InferenceSession(os.path.join(tmp, "textual.onnx"), so, providers=["CPUExecutionProvider"])
    io = {
        "visual.onnx": ([(i.name, i.shape, i.type) for i in sess_v.get_inputs()],
                        [(o.name, o.shape, o.type) for o in sess_v.get_outputs()]),
        "textual.onnx": ([(i.name, i.shape, i.type) for i in sess_t.get_inputs()],
                         [(o.name, o.shape, o.type) for o in sess_t.get_outputs()]),
    }
    for k, v in io.items():
        log(f"  {k}: inputs {v[0]} outputs {v[1]}")
    ld_v = torch.jit.load(os.path.join(tmp, "visual.pt"), map_location="cpu").eval()
    ld_t = torch.jit.load(os.path.join(tmp, "textual.pt"), map_location="cpu").eval()

    # each TorchScript file holds only its own tower
    sd_v, sd_t = ld_v.state_dict(), ld_t.state_dict()
    n_v = sum(x.numel() for x in sd_v.values())
    n_t = sum(x.numel() for x in sd_t.values())
    exp_v = sum(p.numel() for p in model.visual.state_dict().values())
    exp_t = sum(p.numel() for p in textual.state_dict().values())
    log(f"  visual.pt: {len(sd_v)} tensors, {n_v:,} values (model.visual: {exp_v:,}); "
        f"textual.pt: {len(sd_t)} tensors, {n_t:,} values (text tower: {exp_t:,})")
    if n_v != exp_v or n_t != exp_t:
        log("  VERIFY FAILED: a TorchScript file does not hold exactly its own tower's weights")
        all_ok = False
    ref_sd = model.visual.state_dict()
    for k in list(ref_sd)[:3] + ["proj"]:
        if k in sd_v and not torch.equal(sd_v[k], ref_sd[k]):
            log(f"  VERIFY FAILED: visual.pt[{k}] differs from model.visual")
            all_ok = False
    # one graph for every dtype, and no device syncs on shapes
    for fname, ld in (("visual.pt", ld_v), ("textual.pt", ld_t)):
        faults = cc.trace_faults(ld)
        if faults:
            log(f"  VERIFY FAILED: {fname}: {len(faults)} trace faults, the first: {faults[0]}")
            all_ok = False
        else:
            log(f"  {fname}: no constant dtype and no shape arithmetic in the graph")

    with torch.no_grad():
        for b in (1, 3):
            img = torch.randn(b, 3, size, size, generator=gen)
            ref = model.encode_image(img).numpy()
            r = compare(f"visual   B={b} torchscript", ld_v(img).numpy(), ref)
            results[f"visual_ts_b{b}"] = r
            r2 = compare(f"visual   B={b} onnxruntime", sess_v.run(["embedding"], {"image": img.numpy()})[0], ref)
            results[f"visual_onnx_b{b}"] = r2
            all_ok &= r["ok"] and r2["ok"]
        for label, toks in (
            ("tokenized B=1", text_batch(tokenizer, 1)),
            ("tokenized B=3", text_batch(tokenizer, 3)),
            ("random-ids B=1", random_tokens(1, ctx, vocab, gen)),
            ("random-ids B=3", random_tokens(3, ctx, vocab, gen)),
        ):
            ref = model.encode_text(toks).numpy()
            eager = textual(toks).numpy()  # TextTower itself vs open_clip
            r0 = compare(f"textual  {label} TextTower", eager, ref)
            r = compare(f"textual  {label} torchscript", ld_t(toks).numpy(), ref)
            r2 = compare(f"textual  {label} onnxruntime", sess_t.run(["embedding"], {"text": toks.numpy()})[0], ref)
            tag_l = label.replace(" ", "_").replace("=", "")
            results[f"textual_tower_{tag_l}"] = r0
            results[f"textual_ts_{tag_l}"] = r
            results[f"textual_onnx_{tag_l}"] = r2
            all_ok &= r0["ok"] and r["ok"] and r2["ok"]
            # the same rows cut after the longest row's EOT, as the host sends them
            cut = toks[:, : int(toks.argmax(dim=-1).max()) + 1].contiguous()
            rc = compare(f"textual  {label} cut to L={cut.shape[1]} torchscript", ld_t(cut).numpy(), ref)
            rc2 = compare(f"textual  {label} cut to L={cut.shape[1]} onnxruntime",
                          sess_t.run(["embedding"], {"text": cut.numpy()})[0], ref)
            results[f"textual_ts_cut_{tag_l}"] = rc
            results[f"textual_onnx_cut_{tag_l}"] = rc2
            all_ok &= rc["ok"] and rc2["ok"]
        # the TorchScript towers in half precision, converted as the torch
        # backend converts them (weights and float inputs), vs float32 open_clip
        img = torch.randn(3, 3, size, size, generator=gen)
        toks = text_batch(tokenizer, 3)
        ref_i, ref_t = model.encode_image(img).numpy(), model.encode_text(toks).numpy()
        for dname, dt in HALF_DTYPES.items():
            hv = torch.jit.load(os.path.join(tmp, "visual.pt"), map_location="cpu").to(dt).eval()
            ht = torch.jit.load(os.path.join(tmp, "textual.pt"), map_location="cpu").to(dt).eval()
            r = compare(f"visual   B=3 torchscript {dname}", hv(img.to(dt)).float().numpy(), ref_i, HALF_COSINE_MIN)
            r2 = compare(f"textual  tokenized B=3 torchscript {dname}", ht(toks).float().numpy(), ref_t,
                         HALF_COSINE_MIN)
            results[f"visual_ts_{dname}_b3"] = r
            results[f"textual_ts_{dname}_tokenized_b3"] = r2
            all_ok &= r["ok"] and r2["ok"]
            del hv, ht
    timings["verify_s"] = time.perf_counter() - t
    del sess_v, sess_t, ld_v, ld_t

    if not all_ok:
        log(f"\nVERIFY FAILED (a cosine below its bar, wrong weights or a trace fault); the export is left in {tmp}"
            " for inspection")
        return 1

    # ---------------------------------------------------------------- config
    ocv, tv = cc.versions()
    sha = {}
    sizes = {}
    for name in FILES:
        p = os.path.join(tmp, name)
        sha[name] = cc.sha256_file(p)
        sizes[name] = os.path.getsize(p)
    cfg = dict(key)
    cfg.update({
        "family": "clip",
        "random_weights": random_w,
        "normalized": False,
        "normalized_note": "outputs are raw projections; the host L2-normalizes them",
        "embed_dim": int(model.text_projection.shape[1]),
        "image_size": size,
        "mean": [float(x) for x in pp["mean"]],
        "std": [float(x) for x in pp["std"]],
        "interpolation": pp.get("interpolation", "bicubic"),
        "resize_mode": pp.get("resize_mode", "shortest"),
        "fill_color": pp.get("fill_color", 0),
        "image_mode": pp.get("mode", "RGB"),
        "context_length": ctx,
        "vocab_size": vocab,
        "tokenizer": cc.TOKENIZER_FILE,
        "tokenizer_type": "clip_bpe",
        "sot_token_id": int(tokenizer.sot_token_id),
        "eot_token_id": int(tokenizer.eot_token_id),
        "pad_token_id": 0,
        "text_pooling": "argmax",
        "text_dynamic_length": True,
        "torchscript_dtypes": list(cc.TORCHSCRIPT_DTYPES),
        "inputs": {
            "visual": {"name": "image", "dtype": "float32", "shape": ["batch", 3, size, size]},
            "textual": {"name": "text", "dtype": "int64", "shape": ["batch", f"seq<={ctx}"]},
        },
        "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", int(model.text_projection.shape[1])]},
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "sha256": sha,
        "file_bytes": sizes,
        "verification": {"cosine_min_required": COSINE_MIN, "half_cosine_min_required": HALF_COSINE_MIN,
                         "results": results},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "created_by": "tools/export_clip.py",
    })
    if random_w:
        cfg["warning"] = ("RANDOM WEIGHTS: embeddings are meaningless; for real weights run "
                          f"python tools/export_clip.py --model {args.model} --pretrained laion2b_s34b_b79k")
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    # swap in
    old = os.path.join(parent, f".{args.model}.old")
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(dst):
        os.rename(dst, old)
    os.rename(tmp, dst)
    if os.path.exists(old):
        shutil.rmtree(old)

    log(f"\nwrote {dst}:")
    for name in FILES + ("config.json",):
        log(f"  {name:<30} {os.path.getsize(os.path.join(dst, name)) / 1e6:9.2f} MB")
    log("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items())
        + f", total={time.perf_counter() - t_all:.1f}s")
    if random_w:
        cc.loud_random_warning(args.model, args.seed, "this export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
