#!/usr/bin/env python3
"""Make the small models the contract tests run, from a real torch module.

Writes into OUT (default models/test):
  tiny_cnn.pt      TorchScript (torch.jit.trace of the module in eval mode)
  tiny_cnn.onnx    ONNX (torch.onnx.export of the same module)
  input.f32        the test input, little-endian float32, row-major
  expected.f32     PyTorch's own eager output on that input
  meta.json        shapes and the torch version

The module mixes the layers CLIP and ArcFace use (conv, batch norm, GELU,
layer norm, attention-style matmul, linear) with seeded random weights, so a
wrong layout, dtype or device path shows up as a numeric mismatch.
"""
import argparse
import json
import os

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(32)
        self.qkv = nn.Linear(32, 96)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))  # [B, 32, H/4, W/4]
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # [B, N, 32]
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) / 32**0.5, dim=-1)
        pooled = (attn @ v).mean(dim=1)
        return F.normalize(self.head(pooled), dim=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/test")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(args.seed)
    model = TinyCnn().eval()
    # Non-trivial batch-norm statistics, so eval-mode folding is exercised.
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed + 1))
    with torch.no_grad():
        expected = model(x)

    traced = torch.jit.trace(model, x)
    traced.save(os.path.join(args.out, "tiny_cnn.pt"))
    # The TorchScript-based exporter needs no onnxscript and gives a plain opset-17 graph.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.onnx.export(
        model,
        (x,),
        os.path.join(args.out, "tiny_cnn.onnx"),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    x.numpy().astype("<f4").tofile(os.path.join(args.out, "input.f32"))
    expected.numpy().astype("<f4").tofile(os.path.join(args.out, "expected.f32"))
    meta = {
        "input_shape": list(x.shape),
        "output_shape": list(expected.shape),
        "torch": torch.__version__,
        "seed": args.seed,
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {args.out}: tiny_cnn.pt, tiny_cnn.onnx, input.f32, expected.f32 ({meta})")


if __name__ == "__main__":
    main()
