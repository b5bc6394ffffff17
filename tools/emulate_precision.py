#!/usr/bin/env python3
"""How far reduced-precision arithmetic moves the contract model's output,
emulated on the CPU, and how far real faults move it: the figures behind the
per-device tolerances of the contract tests (tests/tests/contract/tolerance.rs).

The model is tools/make_test_models.py's TinyCnn with the same seed and input.
Emulations round the inputs of each convolution and matmul as the device
would, and accumulate in float32, as tensor cores do:

  TF32     10 mantissa bits (round to nearest even), as cuDNN and cuBLAS do
           with TF32 on: libtorch lets cuDNN use it for convolutions by default,
           ONNX Runtime's CUDA provider (use_tf32=1) for convolutions and matmuls
  float16  the whole model in half precision (weights and activations), as
           CoreML on the Neural Engine or the GPU

Prints the max abs diff to PyTorch's float32 CPU output for each, one line
each. Runs in about a second: .venv/bin/python tools/emulate_precision.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_test_models  # noqa: E402


def tf32(t: torch.Tensor) -> torch.Tensor:
    """Rounds float32 values to TF32's 10 mantissa bits (nearest, ties to even)."""
    i = t.contiguous().view(torch.int32)
    return ((i + 0x0FFF + ((i >> 13) & 1)) & ~0x1FFF).view(torch.float32)


def build(seed: int):
    torch.manual_seed(seed)
    model = make_test_models.TinyCnn().eval()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1))
    return model, x


def forward(model, x, conv, mm):
    """TinyCnn.forward with `conv` / `mm` applied to the inputs of convolutions / matmuls."""
    x = F.gelu(model.bn1(F.conv2d(conv(x), conv(model.conv1.weight), model.conv1.bias, 2, 1)))
    x = F.relu(F.conv2d(conv(x), conv(model.conv2.weight), model.conv2.bias, 2, 1))
    tokens = model.norm(x.flatten(2).transpose(1, 2))
    q, k, v = F.linear(mm(tokens), mm(model.qkv.weight), model.qkv.bias).chunk(3, dim=-1)
    attn = torch.softmax(mm(q) @ mm(k).transpose(1, 2) / 32**0.5, dim=-1)
    pooled = (mm(attn) @ mm(v)).mean(dim=1)
    return F.normalize(F.linear(mm(pooled), mm(model.head.weight), model.head.bias), dim=-1)


def main() -> None:
    same = lambda t: t  # noqa: E731
    with torch.no_grad():
        model, x = build(0)
        want = model(x)

        def report(name: str, got: torch.Tensor) -> None:
            print(f"{name:<48} {(got.float() - want).abs().max().item():.2e}")

        # A fresh model for each line: half() rounds the weights in place, and
        # a training-mode forward updates the batch-norm statistics.
        fresh = lambda: build(0)[0]  # noqa: E731
        report("emulation harness, nothing rounded", forward(fresh(), x, same, same))
        report("TF32 convolutions (libtorch cuDNN default)", forward(fresh(), x, tf32, same))
        report("TF32 convolutions + matmuls (ORT CUDA default)", forward(fresh(), x, tf32, tf32))
        report("float16 weights and activations", fresh().half()(x.half()))
        report("fault: input scaled by 1.01", fresh()(x * 1.01))
        report("fault: input scaled by 1.1", fresh()(x * 1.1))
        shifted = x.clone()
        shifted[:, :, 0, 0] += 1.0
        report("fault: one input pixel off by 1.0", fresh()(shifted))
        report("fault: GELU's tanh approximation", gelu_tanh(fresh(), x))
        report("fault: batch norm not applied", no_batch_norm(fresh(), x))
        report("fault: colour channels swapped (BGR)", fresh()(x.flip(1)))
        report("fault: the two batch rows swapped", want.flip(0))
        report("fault: batch norm in training mode", fresh().train()(x))
        report("fault: another model's weights", build(5)[0](x))


def gelu_tanh(model, x):
    original = F.gelu
    F.gelu = lambda t: original(t, approximate="tanh")
    try:
        return forward(model, x, lambda t: t, lambda t: t)
    finally:
        F.gelu = original


def no_batch_norm(model, x):
    model.bn1 = torch.nn.Identity()
    return model(x)


if __name__ == "__main__":
    main()
