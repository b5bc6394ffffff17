#!/usr/bin/env python3
"""The GPU check bundle's benchmark: CLIP images/s and texts/s, switchyard vs
open_clip in Python, on the same GPU, same weights, same inputs.

  switchyard  `switchyard embed IMAGES --texts-file TEXTS` per precision and
              batch size (DTYPE=float32|float16, CLIP_ENGINE=torchscript,
              --io-workers = cores): the rates from its run metadata
              (decode + preprocess + device, model loading excluded); GPU
              memory: the most nvidia-smi saw that process use (or, where
              nvidia-smi cannot see the process, the GPU's used memory above
              what it was before the run).
  python      open_clip's model built once (tools/clip_common.py, the
              weights the exporter wrote), in float32 or under
              torch.autocast(float16), per batch size: images end to end as
              the Python service ran them (PIL open + convert + open_clip
              preprocess + encode_image, one thread), the image tower alone on
              preprocessed batches, texts (tokenize + encode_text); GPU
              memory: torch.cuda.max_memory_allocated, and nvidia-smi's view.

A precision `float32+tf32` is float32 with SWITCHYARD_CUDA_TF32=on (TF32 in
cuBLAS matmuls and cuDNN convolutions); such a run must report libtorch's TF32
switches on in its run metadata, a plain float32 run off. `--no-python` runs
only the switchyard side (the TF32 check: float32 against float32+tf32).
Rows also carry the rate over the device side of the image batches alone
(`image_compute_images_per_s`: images / image compute time), where TF32
shows even when decoding bounds the end-to-end rate.

Prints a table, a `RESULT:` line per row (collected by run.sh's summary) and
writes --json. Not a pass/fail test beyond: every run must finish, and each
switchyard run must have run its towers on `cuda:N` in the precision asked.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def make_images(photos: str, out_dir: str, count: int, long_side: int = 640) -> list[str]:
    from PIL import Image

    sources = sorted(glob.glob(os.path.join(photos, "*", "*.jpg")) + glob.glob(os.path.join(photos, "*", "*.png")))
    sources = [s for s in sources if os.path.getsize(s) > 20_000] or sources  # real photos, not the 112 px crops
    os.makedirs(out_dir, exist_ok=True)
    distinct = []
    for i, src in enumerate(sources[:32]):
        dst = os.path.join(out_dir, f"src_{i:02d}.jpg")
        im = Image.open(src).convert("RGB")
        scale = long_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
        im.save(dst, quality=90)
        distinct.append(dst)
    paths = []
    for i in range(count):
        dst = os.path.join(out_dir, f"img_{i:04d}.jpg")
        if not os.path.exists(dst):
            try:
                os.link(distinct[i % len(distinct)], dst)
            except OSError:
                shutil.copyfile(distinct[i % len(distinct)], dst)
        paths.append(dst)
    return paths

class GpuMemory:
    """Polls nvidia-smi while a process runs: the most it used (MiB)."""

    def __init__(self, pid: int | None):
        self.pid, self.peak_proc, self.peak_dev, self.stop = pid, 0, 0, threading.Event()
        self.base = self.device_used()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def device_used() -> int:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return int(out.split()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return 0

    def proc_used(self) -> int:
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return 0
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0] == str(self.pid):
                try:
                    return int(parts[1])
                except ValueError:
                    return 0
        return 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_proc = max(self.peak_proc, self.proc_used())
            self.peak_dev = max(self.peak_dev, self.device_used() - self.base)
            self.stop.wait(0.2)

    def result(self) -> dict:
        self.stop.set()
        self.thread.join(timeout=5)
        if not shutil.which("nvidia-smi"):
            return {"gpu_mib": None, "gpu_mib_source": "no nvidia-smi"}
        if self.peak_proc:
            return {"gpu_mib": self.peak_proc, "gpu_mib_source": "nvidia-smi, the process"}
        return {"gpu_mib": self.peak_dev, "gpu_mib_source": "nvidia-smi, the GPU's used memory above its level before"}

def run_switchyard(args, precision: str, batch: int, images: list[str], texts_file: str) -> dict:
    meta_path = os.path.join(args.work, f"sy-{precision}-b{batch}.meta.json")
    dtype, _, mode = precision.partition("+")
    tf32 = "on" if mode == "tf32" else "off"
    env = dict(os.environ, DEVICE=args.device, CLIP_ENGINE="torchscript", DTYPE=dtype, SWITCHYARD_CUDA_TF32=tf32)
    cmd = [args.bin, "embed", "--texts-file", texts_file, "--out", os.devnull, "--metadata", meta_path, "--quiet",
           "--batch-size", str(batch), "--io-workers", str(args.io_workers), *images]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    mem = GpuMemory(proc.pid)
    mem.thread.start()
    try:
        _, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SystemExit(f"switchyard embed ({precision}, batch {batch}) ran past {args.timeout} s")
    m = mem.result()
    if proc.returncode != 0:
        raise SystemExit(f"switchyard embed ({precision}, batch {batch}) failed ({proc.returncode}): {err[-2000:]}")
    meta = json.load(open(meta_path))
    summ, clip = meta["summary"], meta.get("clip") or {}
    extra = dict(meta["device"].get("backend_extra") or [])
    row = {"side": "switchyard", "precision": precision, "batch": batch, "engine": "torchscript",
           "runs_on": clip.get("runs_on"), "torch_dtype": extra.get("torch_dtype"),
           "images": summ["images"], "texts": summ["texts"], "errors": summ["errors"],
           "images_per_s": summ["images_per_s"], "texts_per_s": summ["texts_per_s"],
           "image_compute_images_per_s": round(summ["images"] / max(summ.get("image_compute_s") or 0, 1e-9), 1),
           "tf32": tf32, "cuda_tf32_matmul": extra.get("cuda_tf32_matmul"),
           "cuda_tf32_cudnn": extra.get("cuda_tf32_cudnn"), "device_memory": meta.get("device_memory"),
           "process_s": round(time.perf_counter() - t, 2), **m}
    place = "cuda:" if args.device.startswith("cuda") else args.device
    if not str(row["runs_on"]).startswith(place):
        raise SystemExit(f"switchyard's CLIP towers ran on {row['runs_on']}, not {place}: {row}")
    if place == "cuda:" and (row["cuda_tf32_matmul"], row["cuda_tf32_cudnn"]) != (str(tf32 == "on").lower(),) * 2:
        raise SystemExit(f"asked for TF32 {tf32}, libtorch reports matmul {row['cuda_tf32_matmul']}, "
                         f"cuDNN {row['cuda_tf32_cudnn']}: {row}")
    want = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[dtype]
    if place == "cuda:" and row["torch_dtype"] is not None and str(row["torch_dtype"]).lower() != want:
        raise SystemExit(f"switchyard ran {row['torch_dtype']}, not {precision}: {row}")
    return row

def python_worker(args) -> None:
    """Runs in a child process: open_clip on the GPU, every precision and batch size."""
    sys.path.insert(0, TOOLS)
    import contextlib

    import torch
    import torch.nn.functional as F
    from PIL import Image

    import clip_common as cc
    import open_clip

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    name, tag, seed = cfg["model"], cfg.get("pretrained", "none"), cfg.get("seed") or 0
    model, pp = cc.build_model(name, tag, seed)
    dev = torch.device(args.device)
    model = model.to(dev).eval()
    preprocess = cc.build_preprocess(pp)
    tokenizer = open_clip.get_tokenizer(name)
    images = json.load(open(args.images_list))[: args.python_images]
    texts = open(args.texts_file, encoding="utf-8").read().splitlines()
    rows = []

    def amp(p):
        if p == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=getattr(torch, p))

    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for p in args.precisions.split(","):
        for b in [int(x) for x in args.batches.split(",")]:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            with torch.no_grad(), amp(p):
                # warm-up: one batch of each kind, untimed
                warm = torch.stack([preprocess(Image.open(x).convert("RGB")) for x in images[:min(b, 8)]]).to(dev)
                model.encode_image(warm)
                model.encode_text(tokenizer(texts[:b]).to(dev))
                sync()
                t = time.perf_counter()
                n_img = 0
                for i in range(0, len(images), b):
                    x = torch.stack([preprocess(Image.open(q).convert("RGB")) for q in images[i:i + b]])
                    e = F.normalize(model.encode_image(x.to(dev)), dim=-1).float().cpu()
                    n_img += e.shape[0]
                e2e = n_img / (time.perf_counter() - t)
                # the image tower alone, on a preprocessed batch already on the GPU
                x = warm.repeat((b + warm.shape[0] - 1) // warm.shape[0], 1, 1, 1)[:b]
                iters = max(3, args.model_only_images // b)
                sync()
                t = time.perf_counter()
                for _ in range(iters):
                    F.normalize(model.encode_image(x), dim=-1)
                sync()
                model_only = iters * b / (time.perf_counter() - t)
                t = time.perf_counter()
                n_txt = 0
                for i in range(0, len(texts), b):
                    e = F.normalize(model.encode_text(tokenizer(texts[i:i + b]).to(dev)), dim=-1).float().cpu()
                    n_txt += e.shape[0]
                txt = n_txt / (time.perf_counter() - t)
            rows.append({"side": "python", "precision": p, "batch": b, "autocast": p != "float32",
                         "images": n_img, "texts": n_txt, "images_per_s": round(e2e, 2),
                         "model_only_images_per_s": round(model_only, 2), "texts_per_s": round(txt, 2),
                         "torch_max_allocated_mib": round(torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else None,
                         "torch_max_reserved_mib": round(torch.cuda.max_memory_reserved(dev) / 2**20) if cuda else None})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"rows": rows, "torch": torch.__version__, "open_clip": open_clip.__version__,
                      "gpu": torch.cuda.get_device_name(dev) if cuda else "no GPU (cpu)"}))

def run_python(args, images: list[str], texts_file: str) -> dict:
    images_list = os.path.join(args.work, "images.json")
    json.dump(images, open(images_list, "w"))
    cmd = [sys.executable, os.path.abspath(__file__), "--python-worker", "--device", args.device,
           "--model-dir", args.model_dir, "--work", args.work, "--precisions", args.precisions,
           "--batches", args.batches, "--images-list", images_list, "--texts-file", texts_file,
           "--python-images", str(args.python_images), "--model-only-images", str(args.model_only_images)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = GpuMemory(proc.pid)
    mem.thread.start()
    try:
        out, err = proc.communicate(timeout=args.timeout * 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SystemExit(f"the open_clip benchmark ran past {args.timeout * 2} s")
    m = mem.result()
    sys.stderr.write(err[-4000:])
    if proc.returncode != 0:
        raise SystemExit(f"the open_clip benchmark failed ({proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res["nvidia_smi"] = m  # the whole process, all precisions and batch sizes
    return res

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="the switchyard binary")
    ap.add_argument("--model-dir", required=True, help="models/clip/ViT-B-32 (config.json, the exports)")
    ap.add_argument("--photos", help="folder of folders of photos to make the benchmark's JPEGs from")
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", default="float32,float16")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--texts", type=int, default=2048)
    ap.add_argument("--python-images", type=int, default=256, help="images for Python's end-to-end rate")
    ap.add_argument("--model-only-images", type=int, default=2048)
    ap.add_argument("--io-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=int, default=60, help="seconds per switchyard run")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--no-python", action="store_true", help="only the switchyard runs (no open_clip)")
    ap.add_argument("--python-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--images-list", help=argparse.SUPPRESS)
    ap.add_argument("--texts-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.python_worker:
        python_worker(args)
        return 0

    images = make_images(args.photos, os.path.join(args.work, "images"), args.images)
    texts_file = os.path.join(args.work, "texts.txt")
    with open(texts_file, "w", encoding="utf-8") as f:
        for i in range(args.texts):
            f.write(f"a photo of a {['cat', 'dog', 'beach at sunset', 'birthday party', 'old car'][i % 5]} "
                    f"number {i}, taken with a phone\n")
    rows = []
    for p in args.precisions.split(","):
        for b in [int(x) for x in args.batches.split(",")]:
            rows.append(run_switchyard(args, p, b, images, texts_file))
            print(json.dumps(rows[-1]), flush=True)
    py = run_python(args, images, texts_file) if not args.no_python else {
        "rows": [], "gpu": args.device, "torch": "-", "open_clip": "-", "nvidia_smi": {"gpu_mib": None}}
    rows += py["rows"]
    print(f"\nCLIP {os.path.basename(args.model_dir)} on {py['gpu']} ({args.device}): {args.images} images "
          f"(640 px JPEG; Python end to end: {args.python_images}), {args.texts} texts; torch {py['torch']}, "
          f"open_clip {py['open_clip']}; Python process peak on nvidia-smi {py['nvidia_smi']['gpu_mib']} MiB")
    hdr = f"{'pipeline':<44}{'batch':>6}{'images/s':>10}{'model-only':>11}{'texts/s':>10}{'GPU MiB':>9}"
    print(hdr)
    for r in rows:
        label = (f"switchyard torchscript {r['precision']}" if r["side"] == "switchyard"
                 else f"python open_clip {r['precision']}{' autocast' if r.get('autocast') else ''}")
        mib = r.get("gpu_mib") if r["side"] == "switchyard" else r.get("torch_max_allocated_mib")
        mo = r.get("model_only_images_per_s") or r.get("image_compute_images_per_s")
        print(f"{label:<44}{r['batch']:>6}{r['images_per_s']:>10.1f}{(f'{mo:.1f}' if mo else '-'):>11}"
              f"{r['texts_per_s']:>10.1f}{mib if mib is not None else '-':>9}")
        if not args.device.startswith("cuda"):
            continue  # a smoke run: no figures for the summary
        print(f"RESULT: bench {label} batch {r['batch']}: {r['images_per_s']:.1f} images/s"
              + (f" ({mo:.1f} {'device side' if r['side'] == 'switchyard' else 'model-only'})" if mo else "")
              + f", {r['texts_per_s']:.1f} texts/s, "
              + (f"GPU {mib} MiB ({r.get('gpu_mib_source')})" if r["side"] == "switchyard"
                 else f"torch max allocated {mib} MiB"))
    for off in [r for r in rows if r["side"] == "switchyard" and r["precision"] == "float32"]:
        on = next((r for r in rows if r["side"] == "switchyard" and r["precision"] == "float32+tf32"
                   and r["batch"] == off["batch"]), None)
        if on is None or not args.device.startswith("cuda"):
            continue
        ratio = lambda k: on[k] / off[k] if off[k] else float("nan")  # noqa: E731
        print(f"RESULT: tf32 float32 batch {off['batch']}: images/s {off['images_per_s']:.1f} off, "
              f"{on['images_per_s']:.1f} on (x{ratio('images_per_s'):.2f}); device side "
              f"{off['image_compute_images_per_s']:.1f} -> {on['image_compute_images_per_s']:.1f} "
              f"(x{ratio('image_compute_images_per_s'):.2f}); texts/s {off['texts_per_s']:.1f} -> "
              f"{on['texts_per_s']:.1f} (x{ratio('texts_per_s'):.2f})")
    if args.json:
        json.dump({"rows": rows, "python": {k: v for k, v in py.items() if k != "rows"}}, open(args.json, "w"),
                  indent=1)
    return 0

if __name__ == "__main__":
    sys.exit(main())
