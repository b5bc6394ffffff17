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
4. Times the tower's GEMMs alone, the "GEMM ceiling": every MatMul of the
   graph that multiplies by a weight (the linear layers, 96% of the FLOP),
   with the tower's shapes and rows per image, in the tower's order, on fresh
   random weights of the same sizes (so the same 340 MB stream through the
   caches), nothing else in the graph. It is what ONNX Runtime's own GEMM
   kernels reach on this CPU for this work; the report gives the tower's
   share of it next to its share of the FMA peak, which no GEMM reaches
   (on model 167, MLAS and MKL reached 64-75% of it on square GEMMs of
   2048 and 4096; docs/benchmarks.md).

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


def graph_shapes(model_path):
    """The MatMul / Gemm / Conv nodes of the graph and every tensor's shape at
    batch 1. Shapes are the real ones: every such node's inputs and output are
    made graph outputs and the graph is run once (shape inference cannot size
    every MatMul of the traced graph)."""
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
    return ops, shapes, weights


def flop_per_image(ops, shapes):
    """2 x multiply-adds of MatMul / Gemm / Conv for one image."""
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


def gemm_chain(ops, shapes, weights, batch):
    """The tower's weight GEMMs alone, as one ONNX graph at `batch` (see 4.
    above): returns (serialized model, feeds, FLOP)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    nodes, inits, inputs, outputs, feeds, flop = [], [], {}, [], {}, 0
    for i, node in enumerate(ops):
        if node.op_type != "MatMul" or node.input[1] not in weights or len(weights[node.input[1]]) != 2:
            continue
        k, n = weights[node.input[1]]
        rows = int(np.prod(shapes[node.input[0]][:-1])) * batch
        x = f"x_{rows}_{k}"
        if x not in inputs:
            inputs[x] = helper.make_tensor_value_info(x, TensorProto.FLOAT, [rows, k])
            feeds[x] = rng.standard_normal((rows, k), dtype=np.float32)
        w = rng.standard_normal((k, n), dtype=np.float32) * 0.02
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"y{i}"]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [rows, n]))
        flop += 2 * rows * k * n
    graph = helper.make_graph(nodes, "gemm_chain", list(inputs.values()), outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString(), feeds, flop


def session(model, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def timed(sess, feeds, runs):
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def time_tower(model_path, threads, batch, runs):
    sess = session(str(model_path), threads)
    inp = sess.get_inputs()[0]
    size = inp.shape[-1] if isinstance(inp.shape[-1], int) else 224
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    return timed(sess, {inp.name: x}, runs)


def time_gemms(ops, shapes, weights, threads, batch, runs):
    """(median s, GFLOP/s) of the GEMM chain at `batch`."""
    model, feeds, flop = gemm_chain(ops, shapes, weights, batch)
    med = timed(session(model, threads), feeds, runs)[0]
    return med, flop / med / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/clip/ViT-B-32/visual.onnx"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    peaks, isa = peak_gflops(a.threads)
    ops, shapes, weights = graph_shapes(a.model)
    flop = flop_per_image(ops, shapes)
    towers, gemms = {}, {}
    for batch in (1, 8, 32):
        towers[batch] = time_tower(a.model, a.threads, batch, a.runs)
        gemms[batch] = time_gemms(ops, shapes, weights, a.threads, batch, a.runs)
    peaks += peak_gflops(a.threads)[0]
    peak = statistics.median(peaks)
    report = {"threads": a.threads, "isa": isa, "peak_gflops": peak, "peak_rounds": peaks,
              "gflop_per_image": round(flop / 1e9, 3), "model": a.model, "batches": []}
    for batch, (med, lo, hi) in towers.items():
        gflops = flop * batch / med / 1e9
        ceiling = gemms[batch][1]
        report["batches"].append({
            "batch": batch, "median_s": round(med, 4), "min_s": round(lo, 4), "max_s": round(hi, 4),
            "images_per_s": round(batch / med, 1), "gflops": round(gflops, 1), "share_of_peak": round(gflops / peak, 3),
            "gemm_ceiling_gflops": round(ceiling, 1), "ceiling_share_of_peak": round(ceiling / peak, 3),
            "share_of_ceiling": round(gflops / ceiling, 3),
        })
    print(json.dumps(report, indent=2))
    for b in report["batches"]:
        print(f"| {b['batch']} | {b['images_per_s']} | {b['gflops']} | {100 * b['share_of_peak']:.0f}% "
              f"| {b['gemm_ceiling_gflops']} ({100 * b['ceiling_share_of_peak']:.0f}%) "
              f"| {100 * b['share_of_ceiling']:.0f}% | {b['min_s']}-{b['max_s']} s |")


if __name__ == "__main__":
    main()
