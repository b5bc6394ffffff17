#!/usr/bin/env python3
"""Fuse each self-attention block of an exported CLIP tower into one ONNX
Runtime `com.microsoft.Attention` node (issue 19, a measured lever).

torch.onnx (dynamo=False) writes `nn.MultiheadAttention` as some 60 nodes per
layer: the packed QKV MatMul and bias Add, three Slices, Reshape/Transpose
chains built from Shape arithmetic, the scaled Q.K^T, Softmax, .V, and the
merge back. ONNX Runtime's own transformer optimizer
(onnxruntime.transformers.optimizer, model types clip / vit / bert) fuses the
LayerNorms and biased GELUs of these towers but matches none of the attention
blocks, and the session's graph optimizations at level "all" already do the
LayerNorm and GELU fusions (its output is bit-identical). This pass matches
the block by its two ends instead of its inner shape: a MatMul with an
[H, 3H] weight followed by an Add of a [3H] bias (the in-projection), and the
first MatMul with an [H, H] weight downstream of it (the out-projection);
everything between them is replaced by Attention(x, W_qkv, b_qkv) with the
model's head count, and nodes left without consumers are dropped.

    .venv/bin/python tools/fuse_attention.py IN.onnx OUT.onnx --heads 12 [--causal]

Verification is the caller's (tools/roofline/tower_share.py times it;
the parity tests compare against open_clip): this script only checks that
each matched block is a plain chain with one input and one output.
"""

import argparse
import sys

import onnx
from onnx import helper, numpy_helper


def consumers(graph):
    out = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def fuse(model, heads: int, causal: bool) -> int:
    graph = model.graph
    inits = {t.name: list(t.dims) for t in graph.initializer}
    users = consumers(graph)
    producer = {o: n for n in graph.node for o in n.output}

    def weight_shape(name):
        """The shape of an initializer, also behind the Identity nodes torch.onnx
        writes for weights equal to another (zero biases, say)."""
        while name not in inits and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        return inits.get(name)

    # Small integer tensors only (Slice axes): the weights need not be read.
    small = [(o, a.t) for n in graph.node if n.op_type == "Constant"
             for a in n.attribute if a.name == "value" for o in n.output]
    small += [(t.name, t) for t in graph.initializer]
    constants = {name: numpy_helper.to_array(t).tolist() for name, t in small
                 if len(t.dims) <= 1 and (not t.dims or t.dims[0] <= 4)}

    def slices_rows(n):
        """A Slice along the sequence axis (axis 1 of [B, L, H])."""
        return n.op_type == "Slice" and len(n.input) > 3 and constants.get(n.input[3]) in ([1], 1)

    fused = 0
    new_nodes = {}
    remove = set()
    for node in graph.node:
        w = weight_shape(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w) != 2 or w[1] != 3 * w[0]:
            continue
        hidden = w[0]
        adds = [n for n in users.get(node.output[0], []) if n.op_type == "Add"]
        if len(adds) != 1:
            continue
        add = adds[0]
        bias = [i for i in add.input if weight_shape(i) == [3 * hidden]]
        if len(bias) != 1:
            continue
        # Walk downstream from the bias Add to the out-projection's input.
        frontier, seen, end = [add.output[0]], set(), None
        while frontier and end is None:
            name = frontier.pop(0)
            for user in users.get(name, []):
                if user.op_type == "MatMul" and weight_shape(user.input[1]) == [hidden, hidden]:
                    end = user.input[0]
                    break
                if id(user) not in seen:
                    seen.add(id(user))
                    frontier.extend(user.output)
        if end is None:
            continue
        # Every node reached from the Add before the out-projection belongs to the block.
        block = [n for n in graph.node if id(n) in seen]
        if any(slices_rows(n) for n in block):
            # The image tower's last block asks with the class token alone
            # (clip_common._attention's `queries`), which Attention cannot say.
            continue
        attention = helper.make_node(
            "Attention", [node.input[0], node.input[1], bias[0]], [end],
            name=f"fused_attention_{fused}", domain="com.microsoft", num_heads=heads,
            **({"unidirectional": 1} if causal else {}))
        new_nodes[id(node)] = attention
        remove.update(id(n) for n in block)
        remove.add(id(add))
        fused += 1
    kept = []
    for node in graph.node:
        if id(node) in new_nodes:
            kept.append(new_nodes[id(node)])
        elif id(node) not in remove:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    prune(graph)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


def prune(graph) -> None:
    """Drops nodes whose outputs nothing reads (the Shape arithmetic of the removed blocks)."""
    while True:
        needed = {o.name for o in graph.output}
        for node in graph.node:
            needed.update(node.input)
        dead = [n for n in graph.node if not any(o in needed for o in n.output)]
        if not dead:
            return
        ids = {id(n) for n in dead}
        kept = [n for n in graph.node if id(n) not in ids]
        del graph.node[:]
        graph.node.extend(kept)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--causal", action="store_true", help="the text tower's causal mask")
    a = ap.parse_args()
    model = onnx.load(a.src)
    n = fuse(model, a.heads, a.causal)
    if n == 0:
        print(f"error: no attention block matched in {a.src}", file=sys.stderr)
        return 1
    onnx.save(model, a.dst)
    print(f"{a.dst}: {n} attention blocks fused, {len(model.graph.node)} nodes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
