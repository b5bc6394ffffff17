#!/usr/bin/env python3
"""How close the CLIP image tower runs to this CPU's FP32 peak (issue 19).

1. Measures the peak with a small FMA kernel (fma_peak.c, compiled here with
   the system's C compiler: 16-lane AVX-512 FMAs where the CPU has AVX-512F,
   as MLAS picks its kernels, else AVX2 + FMA; one thread per core asked).
2. Counts the tower's FLOP from the exported ONNX graph (MatMul, Gemm and
   Conv, 2 FLOP per multiply-add, shapes from ONNX shape inference), i.e.
   the arithmetic the model must do, not what a kernel happens to run.
3. Times the tower alone in ONNX Runtime (the same visual.onnx switchyard
   runs, THREADS intra-op threads, sequential execution, graph
   optimizations as switchyard's plugin sets them: all) at batch 1, 8 and 32,
   median of RUNS after a warm-up, and reports GFLOP/s and the share of peak.

    .venv/bin/python tools/roofline/tower_share.py [--model models/clip/ViT-B-32/visual.onnx] [--threads 2] [--runs 7]

Prints JSON and markdown rows for docs/benchmarks.md. Nothing is asserted.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def peak_gflops(threads, rounds=3):
    """The FMA kernel's GFLOP/s, `rounds` times (each the best of its own 3
    timed passes). This machine is a shared VM: one pass now and then comes
    out at half the rate, so the report uses the median of every round, taken
    before and after the tower timings, and shows the spread."""
    exe = Path(tempfile.mkdtemp()) / "fma_peak"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-mavx2", "-mfma", "-pthread", str(HERE / "fma_peak.c"), "-o", str(exe)], check=True)
    results = []
    for _ in range(rounds):
        out = subprocess.run([str(exe), str(threads)], check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out))
    return [r["gflops"] for r in results], results[0].get("isa", "avx2")


def flop_per_image(model_path):
    """2 x multiply-adds of MatMul / Gemm / Conv for one image. Shapes are the
    real ones: every such node's inputs and output are made graph outputs and
    the graph is run once at batch 1 (shape inference cannot size every
    MatMul of the traced graph)."""
    model = onnx.load(str(model_path))
    ops = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    existing = {o.name for o in model.graph.output}
    wanted = []
    for n in ops:
        for name in (n.input[0], n.input[1], n.output[0]):
            if name not in weights and name not in existing and name not in wanted:
                wanted.append(name)
    for name in wanted:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = inp.shape[-1] if isinstance(inp.shape[-1], int) else 224
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {inp.name: np.zeros((1, 3, size, size), np.float32)})
    shapes = dict(weights)
    shapes.update({n: list(v.shape) for n, v in zip(names, values)})
    total = 0
    for node in ops:
        a, b, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
        if node.op_type == "Conv":
            total += 2 * int(np.prod(out)) * int(np.prod(b[1:]))  # weight: M, C/group, kh, kw
        else:
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
            total += 2 * int(np.prod(out)) * k
    return total


def time_tower(model_path, threads, batch, runs):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = inp.shape[-1] if isinstance(inp.shape[-1], int) else 224
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    sess.run(None, {inp.name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/clip/ViT-B-32/visual.onnx"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    peaks, isa = peak_gflops(a.threads)
    flop = flop_per_image(a.model)
    timed = {batch: time_tower(a.model, a.threads, batch, a.runs) for batch in (1, 8, 32)}
    peaks += peak_gflops(a.threads)[0]
    peak = statistics.median(peaks)
    report = {"threads": a.threads, "isa": isa, "peak_gflops": peak, "peak_rounds": peaks,
              "gflop_per_image": round(flop / 1e9, 3), "model": a.model, "batches": []}
    for batch, (med, lo, hi) in timed.items():
        gflops = flop * batch / med / 1e9
        report["batches"].append({
            "batch": batch, "median_s": round(med, 4), "min_s": round(lo, 4), "max_s": round(hi, 4),
            "images_per_s": round(batch / med, 1), "gflops": round(gflops, 1), "share_of_peak": round(gflops / peak, 3),
        })
    print(json.dumps(report, indent=2))
    for b in report["batches"]:
        print(f"| {b['batch']} | {b['images_per_s']} | {b['gflops']} | {100 * b['share_of_peak']:.0f}% "
              f"| {b['min_s']}-{b['max_s']} s |")


if __name__ == "__main__":
    main()
