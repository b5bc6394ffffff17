#!/usr/bin/env python3
"""Checks the TorchScript towers of a CLIP export for what would break half
precision or sync a GPU on every call (tools/clip_common.trace_faults):
constant dtype arguments (`torch.to(x, 6)`) and arithmetic on sizes
(`int(floor_divide(size, CONSTANTS.c0))`). Prints one line per file, every
fault found, and exits 1 if there is any.

First it checks the checker: open_clip's own LayerNorm and
nn.MultiheadAttention, the two sources of both faults in a plain trace of
open_clip's towers, traced here, must each be flagged.

Usage (tests/tests/clip_dtypes.rs runs it):
  .venv/bin/python tools/check_traces.py models/clip/ViT-B-32
"""
from __future__ import annotations

import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import torch  # noqa: E402

import clip_common as cc  # noqa: E402


def self_test() -> list:
    """The faults the checker must see; returns what it missed."""
    from open_clip.transformer import LayerNorm

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = LayerNorm(64)
            self.attn = torch.nn.MultiheadAttention(64, 4, batch_first=True)

        def forward(self, x):
            y = self.ln(x)
            return self.attn(y, y, y, need_weights=False)[0]

    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(Block().eval(), torch.randn(2, 5, 64), check_trace=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)
    faults = cc.trace_faults(traced)
    missed = []
    if not any(f.startswith("constant dtype") for f in faults):
        missed.append("open_clip LayerNorm's cast back to float32 (`torch.to(x, 6)`)")
    if not any(f.startswith("arithmetic on a size") for f in faults):
        missed.append("nn.MultiheadAttention's `embed_dim // num_heads` on a traced size")
    return missed


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    missed = self_test()
    if missed:
        print("the checker misses: " + "; ".join(missed))
        return 1
    print("self-test: the checker flags open_clip's LayerNorm cast and MultiheadAttention's size arithmetic")
    bad = 0
    for name in ("visual.pt", "textual.pt"):
        path = os.path.join(sys.argv[1], name)
        module = torch.jit.load(path, map_location="cpu")
        faults = cc.trace_faults(module)
        nodes = sum(1 for _ in module.inlined_graph.nodes())
        print(f"{name}: {len(faults)} faults in {nodes} nodes")
        for f in faults:
            print(f"  {f}")
        bad += len(faults)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
