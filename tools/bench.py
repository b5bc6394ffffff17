#!/usr/bin/env python3
"""The benchmark: switchyard against the Python reference pipelines, one run.

    .venv/bin/python tools/bench.py            (or: bash ci/bench.sh)

Same machine, same weights (models/), same input files, same thread count
(--threads, default: every core), each side in its own process, each
measurement repeated --repeat times, the two sides taking turns (ours,
python, ours, ...: the VM's drift in speed falls on both alike). The table
shows medians and the ratio ours / python (for times and memory, python /
ours: above 1 is better for us in every column); stderr shows each round's
ratio.

Rows:
  clip camera    CLIP images end to end from 12 MP JPEGs (4000x3000 photos with
                 sensor-like grain, 4-5 MB each): `switchyard embed` (ONNX on
                 the CPU, decode overlapped with inference, reduced-scale JPEG
                 decode) vs tools/reference/clip_embed.py (PIL open +
                 convert("RGB") + open_clip preprocess + encode_image). Also
                 ours with SWITCHYARD_SCALED_DECODE=false (PIL's exact pixels).
  clip smooth    the same from 12 MP JPEGs without the grain (smooth photos
                 compress to a fraction and decode faster).
  clip 640px     the same from 640 px JPEGs (where the model is the cost).
  clip int8      ours with the opt-in int8 towers (CLIP_ENGINE=onnx-int8) on
                 the 640 px files, against the float32 Python reference.
  clip bf16      ours with CLIP_ENGINE=torchscript-bf16 (float32 towers whose
                 matmuls take bfloat16 inputs on AMX/AVX-512-BF16) on the
                 640 px files, against the float32 Python reference.
  clip texts     captions, texts/s.
  faces          end to end from files: `switchyard embed --faces` vs
                 insightface's FaceAnalysis(buffalo_l, detection + recognition)
                 .get on PIL-decoded images, as the service runs it.
  decision       time to decide the device: `switchyard probe --no-inspect`
                 (in-process figure and whole process) vs `import torch` +
                 torch.cuda.is_available() (tools/bench_decision.py).
  tower          the image tower alone in ONNX Runtime at batch 1, 8 and 32:
                 GFLOP/s and share of this CPU's measured FP32 peak, and
                 the same for the tower's GEMMs alone, what ONNX Runtime's
                 kernels reach on that work (tools/roofline/tower_share.py).
  boundary       one call across the plugin ABI (target/release/boundary) as a
                 share of a batch-1 image embedding.
  peak memory    peak RSS of each process above (its own VmHWM, polled; not
                 getrusage, which inherits this process's RSS at exec). For
                 faces twice: against insightface alone, and against the
                 same with torch + open_clip imported, as in the service's
                 one process (switchyard's plugin maps libtorch either way).

Not a test: nothing is asserted. The figures go into docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bench_clip  # noqa: E402  (sample_images, captions)

PY = os.path.join(ROOT, ".venv/bin/python")
BIN = os.path.join(ROOT, "target/release")


def vm_hwm_mb(pid: int) -> float | None:
    """The peak RSS of `pid`'s own address space (VmHWM), in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[str, str, float]:
    """Runs cmd; returns (stdout, stderr, peak RSS in MB) of that process alone.

    Not getrusage's ru_maxrss: on Linux a child's maxrss starts from the RSS
    of the address space it replaced at exec, which is a copy of this
    process (torch and open_clip imported: ~800 MB), so both sides read
    the same. VmHWM belongs to the new address space only; it is polled
    every 20 ms and its last value kept (it only grows). Where /proc is
    missing (macOS), ru_maxrss is used (there it is the child's own, in bytes).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        peak = 0.0
        while proc.poll() is None:
            hwm = vm_hwm_mb(proc.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({proc.returncode}):\n{stderr[-3000:]}")
    if not os.path.exists("/proc/self/status"):
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (1 << 20)
    return stdout, stderr, peak


def camera_images(out_dir: str, count: int, grain: float = 6.0) -> list[str]:
    """12 MP JPEGs: real photos cropped to 4:3, upscaled to 4000x3000, with
    seeded Gaussian grain (sigma 6) so the files carry camera-like detail and
    size (a smooth upscale compresses to a fraction and decodes faster)."""
    import numpy as np
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    sources = bench_clip.sample_images(os.path.join(out_dir, "src"), count, 640)
    paths = []
    for i, src in enumerate(sources):
        dst = os.path.join(out_dir, f"camera_{i:03d}.jpg")
        if not os.path.exists(dst):
            im = Image.open(src).convert("RGB")
            w, h = im.size
            cw, ch = (w, w * 3 // 4) if w * 3 <= h * 4 else (h * 4 // 3, h)
            im = im.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
            im = im.resize((4000, 3000), Image.Resampling.BICUBIC)
            if grain:
                rng = np.random.default_rng(i)
                a = np.asarray(im, dtype=np.float32) + rng.normal(0, grain, (3000, 4000, 3)).astype(np.float32)
                im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
            im.save(dst, quality=92)
        paths.append(dst)
    return paths


def ours_embed(args, extra: list[str], env_extra: dict | None = None) -> tuple[dict, float]:
    env = dict(os.environ, SWITCHYARD_THREADS=str(args.threads), SWITCHYARD_QUIET="true", **(env_extra or {}))
    cmd = [os.path.join(BIN, "switchyard"), "embed", *extra, "--out", os.devnull,
           "--batch-size", str(args.batch_size), "--io-workers", str(args.threads)]
    _, err, rss = run_measured(cmd, env)
    line = [x for x in err.splitlines() if x.startswith("embedded ")][-1]
    rates = line.split(": ", 1)[1]
    return {"images_per_s": float(rates.split(" images/s")[0]),
            "texts_per_s": float(rates.split(", ")[1].split(" texts/s")[0])}, rss


def python_clip(args, extra: list[str]) -> tuple[dict, float]:
    cmd = [PY, "tools/reference/clip_embed.py", "--model-dir", args.clip_dir, "--threads", str(args.threads),
           "--batch-size", str(args.batch_size), "--warmup", "1", "--out", os.devnull, *extra]
    out, _, rss = run_measured(cmd)
    return json.loads(out.strip().splitlines()[-1]), rss


def python_faces(args, images: list[str], import_torch: bool = False) -> tuple[dict, float]:
    cmd = [PY, "tools/reference/faces_reference.py", "service", "--model-dir", args.face_dir,
           "--threads", str(args.threads), *(["--import-torch"] if import_torch else []), *images]
    out, _, rss = run_measured(cmd)
    return json.loads(out.strip().splitlines()[-1]), rss


def decision(args) -> dict:
    out, _, _ = run_measured([PY, "tools/bench_decision.py", "--runs", str(max(5, args.repeat)), "--json"])
    return json.loads(out.strip().splitlines()[-1])


def boundary(args) -> dict:
    out, _, _ = run_measured([os.path.join(BIN, "boundary"), "--model-dir", args.clip_dir,
                              "--threads", str(args.threads)])
    return json.loads(out.strip().splitlines()[-1])


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, what: str, unit: str, ours: float, python: float, higher_is_better: bool = True) -> None:
        ratio = ours / python if higher_is_better else python / ours
        self.rows.append((what, unit, f"{ours:,.4g}", f"{python:,.4g}", f"{ratio:,.2f}x"))

    def print(self) -> None:
        if not self.rows:
            return
        head = ("measurement", "unit", "switchyard", "python", "ratio")
        widths = [max(len(r[i]) for r in self.rows + [head]) for i in range(5)]
        line = lambda r: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"  # noqa: E731
        print(line(head))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            print(line(r))


def median_of(runs: list[tuple[dict, float]], key: str) -> tuple[float, float]:
    return statistics.median(r[0][key] for r in runs), max(r[1] for r in runs)


def rounds(args, *runs):
    """Runs each callable once a round, for --repeat rounds (ours, Python,
    ours, Python, ...), so that this shared VM's slow drift in speed lands on
    both sides alike instead of on whichever side ran during a slow minute;
    returns one list of results per callable."""
    out = [[] for _ in runs]
    for _ in range(args.repeat):
        for results, run in zip(out, runs):
            results.append(run())
    return out


def show_rounds(what: str, ours: list, python: list, key: str) -> None:
    """Each round's ratio, to stderr: the spread behind a row's medians."""
    ratios = [o[0][key] / p[0][key] for o, p in zip(ours, python)]
    print(f"  {what}: per-round ratios " + ", ".join(f"{r:.2f}x" for r in ratios), file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--camera", type=int, default=16, help="12 MP JPEGs")
    ap.add_argument("--passes", type=int, default=3,
                    help="image rows go over their files this many times (the same list on both sides), so that "
                         "each run lasts long enough for steady state")
    ap.add_argument("--small", type=int, default=32, help="640 px JPEGs")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--faces", type=int, default=32, help="640 px photos for the faces row")
    ap.add_argument("--only", default="", help="comma list of: camera,smooth,small,int8,bf16,texts,faces,decision,tower,boundary")
    ap.add_argument("--clip-dir", default=os.path.join(ROOT, "models/clip/ViT-B-32"))
    ap.add_argument("--face-dir", default=os.path.join(ROOT, "models/faces/buffalo_l"))
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda s: not only or s in only  # noqa: E731

    work = os.path.join(ROOT, "target/bench")
    t0 = time.time()
    table = Table()
    memory = Table()
    print(f"threads={args.threads}, batch={args.batch_size}, median of {args.repeat} runs; preparing inputs...",
          file=sys.stderr, flush=True)
    if want("camera"):
        cam = camera_images(os.path.join(work, "camera"), args.camera) * args.passes
        ours, exact, py = rounds(args, lambda: ours_embed(args, cam),
                                 lambda: ours_embed(args, cam, {"SWITCHYARD_SCALED_DECODE": "false"}),
                                 lambda: python_clip(args, ["--images", *cam]))
        show_rounds("12 MP grainy", ours, py, "images_per_s")
        (o, orss), (e, _), (p, prss) = (median_of(r, "images_per_s") for r in (ours, exact, py))
        table.add(f"CLIP images, {args.camera} x 12 MP JPEG (grainy) x {args.passes}", "images/s", o, p)
        table.add("  same, exact PIL decode", "images/s", e, p)
        memory.add("CLIP images, 12 MP JPEG", "peak RSS MB", orss, prss, higher_is_better=False)
    if want("smooth"):
        cam = camera_images(os.path.join(work, "camera_smooth"), args.camera, grain=0) * args.passes
        ours, py = rounds(args, lambda: ours_embed(args, cam), lambda: python_clip(args, ["--images", *cam]))
        show_rounds("12 MP smooth", ours, py, "images_per_s")
        (o, _), (p, _) = (median_of(r, "images_per_s") for r in (ours, py))
        table.add(f"CLIP images, {args.camera} x 12 MP JPEG (smooth) x {args.passes}", "images/s", o, p)
    if want("small"):
        small = bench_clip.sample_images(os.path.join(work, "images"), args.small, 640) * args.passes
        ours, py = rounds(args, lambda: ours_embed(args, small), lambda: python_clip(args, ["--images", *small]))
        show_rounds("640 px", ours, py, "images_per_s")
        (o, orss), (p, prss) = (median_of(r, "images_per_s") for r in (ours, py))
        table.add(f"CLIP images, {args.small} x 640 px JPEG x {args.passes}", "images/s", o, p)
        memory.add("CLIP images, 640 px JPEG", "peak RSS MB", orss, prss, higher_is_better=False)
    # The opt-in engines on the 640 px files, against the same float32 Python reference:
    # the int8 towers (CLIP_ENGINE=onnx-int8) and the TorchScript towers with bf16 matmul
    # inputs (CLIP_ENGINE=torchscript-bf16).
    for key, engine, label in (("int8", "onnx-int8", "int8"), ("bf16", "torchscript-bf16", "bf16 matmuls")):
        if not want(key):
            continue
        small = bench_clip.sample_images(os.path.join(work, "images"), args.small, 640) * args.passes
        ours, py = rounds(args, lambda: ours_embed(args, small, {"CLIP_ENGINE": engine}),  # noqa: B023
                          lambda: python_clip(args, ["--images", *small]))  # noqa: B023
        show_rounds(f"640 px {key}", ours, py, "images_per_s")
        (o, _), (p, _) = (median_of(r, "images_per_s") for r in (ours, py))
        table.add(f"CLIP images {label} (opt-in), {args.small} x 640 px JPEG x {args.passes}", "images/s", o, p)
    if want("texts"):
        texts_file = os.path.join(work, "texts.txt")
        os.makedirs(work, exist_ok=True)
        with open(texts_file, "w", encoding="utf-8") as f:
            f.write("\n".join(bench_clip.captions(args.texts)) + "\n")
        ours, py = rounds(args, lambda: ours_embed(args, ["--texts-file", texts_file]),
                          lambda: python_clip(args, ["--texts-file", texts_file]))
        show_rounds("texts", ours, py, "texts_per_s")
        (o, orss), (p, prss) = (median_of(r, "texts_per_s") for r in (ours, py))
        table.add(f"CLIP texts, {args.texts} captions", "texts/s", o, p)
        memory.add("CLIP texts", "peak RSS MB", orss, prss, higher_is_better=False)
    if want("faces"):
        photos = bench_clip.sample_images(os.path.join(work, "images"), args.faces, 640) * args.passes
        ours, py = rounds(args, lambda: ours_embed(args, ["--faces", *photos]), lambda: python_faces(args, photos))
        show_rounds("faces", ours, py, "images_per_s")
        service = python_faces(args, photos, import_torch=True)
        (o, orss), (p, prss) = (median_of(r, "images_per_s") for r in (ours, py))
        table.add(f"faces, {args.faces} x 640 px JPEG x {args.passes}", "images/s", o, p)
        memory.add("faces (python: insightface alone)", "peak RSS MB", orss, prss, higher_is_better=False)
        memory.add("faces (python: + torch, open_clip, as in the service)", "peak RSS MB", orss, service[1],
                   higher_is_better=False)
    if want("decision"):
        d = decision(args)
        table.add("device decision, in process", "ms", d["switchyard_decision_ms"], d["python_ms"], False)
        table.add("device decision, whole process", "ms", d["switchyard_process_ms"], d["python_ms"], False)
    if want("tower"):
        tower = run_measured([PY, "tools/roofline/tower_share.py", "--model", os.path.join(args.clip_dir, "visual.onnx"),
                              "--threads", str(args.threads)])[0]
        report = json.loads(tower[:tower.rindex("}") + 1])
        print(f"image tower alone (ONNX Runtime, {report['gflop_per_image']} GFLOP/image), FP32 peak "
              f"{report['peak_gflops']:.0f} GFLOP/s ({report['isa']}, {args.threads} threads, rounds "
              f"{min(report['peak_rounds']):.0f}-{max(report['peak_rounds']):.0f}):")
        for b in report["batches"]:
            print(f"  batch {b['batch']:>2}: {b['images_per_s']} images/s, {b['gflops']} GFLOP/s, "
                  f"{100 * b['share_of_peak']:.0f}% of peak; its GEMMs alone {b['gemm_ceiling_gflops']} GFLOP/s "
                  f"({100 * b['ceiling_share_of_peak']:.0f}% of peak), the tower at "
                  f"{100 * b['share_of_ceiling']:.0f}% of that")
    if want("boundary"):
        b = boundary(args)
        print(f"plugin boundary: health() round trip {b['health_ns']:.0f} ns; run() of a 1x1 identity "
              f"{b['tiny_run_us']:.1f} us; batch-1 image embedding {b['image_ms']:.2f} ms; "
              f"ABI share of a batch-1 image call: {b['share_percent']:.4f}%")
    table.print()
    if memory.rows:
        print()
    memory.print()
    print(f"\n(total {time.time() - t0:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
