"""PyTorch's results for half-precision inputs (bfloat16, float16) through norm layers with
float32 parameters and running statistics: the mixed-precision golden cases of
tests/half_precision.rs.

For each dtype: BatchNorm2d(3) one training step (output, gradients of sum(output * upstream),
running statistics after) then one evaluation step; BatchNorm1d(4) the same on [N, C];
GroupNorm(2, 4) and LayerNorm([5]) forward. Inputs are drawn in float32, rounded to the half
dtype, and stored as the float32 values of that rounding (exactly representable), so both sides
start from identical inputs. Outputs and input gradients are half tensors stored as float32.
PyTorch's CPU kernels accumulate half inputs in float32, which is what the layers here do.

Run: <python with torch> scripts/gen_half_precision.py [OUT]
"""
import json
import os
import sys

import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def t(x):
    x = x.detach().to(torch.float64)
    return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}


def half_input(shape, dtype, gen, loc=2.0, scale=3.0):
    return (torch.randn(shape, generator=gen) * scale + loc).to(dtype)


def batch_norm_case(name, layer, shape, dtype, gen):
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.num_features, generator=gen) + 0.5)
        layer.bias.copy_(torch.rand(layer.num_features, generator=gen) - 0.5)
    x = half_input(shape, dtype, gen).requires_grad_(True)
    upstream = torch.randn(shape, generator=gen).to(dtype)
    layer.train()
    y = layer(x)
    assert y.dtype == dtype, (name, y.dtype)
    (y.float() * upstream.float()).sum().backward()
    train = {"mode": "train", "input": t(x), "upstream": t(upstream), "output": t(y),
             "grad_input": t(x.grad), "grad_weight": t(layer.weight.grad),
             "grad_bias": t(layer.bias.grad), "running_mean": t(layer.running_mean),
             "running_var": t(layer.running_var)}
    layer.eval()
    x_eval = half_input(shape, dtype, gen)
    with torch.no_grad():
        y_eval = layer(x_eval)
    return {"name": name, "layer": "BatchNorm", "dtype": str(dtype).split(".")[1],
            "num_features": layer.num_features, "weight": t(layer.weight), "bias": t(layer.bias),
            "steps": [train, {"mode": "eval", "input": t(x_eval), "output": t(y_eval)}]}


def forward_case(name, kind, layer, shape, dtype, gen, **config):
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) + 0.5)
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) - 0.5)
        x = half_input(shape, dtype, gen)
        y = layer(x)
    assert y.dtype == dtype, (name, y.dtype)
    return {"name": name, "layer": kind, "dtype": str(dtype).split(".")[1], "config": config,
            "weight": t(layer.weight), "bias": t(layer.bias),
            "steps": [{"mode": "eval", "input": t(x), "output": t(y)}]}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data")
    gen = torch.Generator().manual_seed(2026)
    cases = []
    for dtype in [torch.bfloat16, torch.float16]:
        short = str(dtype).split(".")[1]
        cases.append(batch_norm_case(f"batchnorm2d_{short}", nn.BatchNorm2d(3), [4, 3, 5, 5], dtype, gen))
        cases.append(batch_norm_case(f"batchnorm1d_{short}", nn.BatchNorm1d(4), [16, 4], dtype, gen))
        cases.append(forward_case(f"groupnorm_{short}", "GroupNorm", nn.GroupNorm(2, 4), [3, 4, 3, 3],
                                  dtype, gen, num_groups=2, num_channels=4))
        cases.append(forward_case(f"layernorm_{short}", "LayerNorm", nn.LayerNorm([5]), [6, 5],
                                  dtype, gen, normalized_shape=[5]))
    doc = {"generator": "scripts/gen_half_precision.py", "torch_version": torch.__version__,
           "format": "T = {shape, data (row-major, float64 values)}; parameters and running "
                     "statistics float32, inputs/outputs/input gradients in the case's dtype",
           "cases": cases}
    with open(os.path.join(out, "half_precision.json"), "w") as f:
        json.dump(doc, f)
    for case in cases:
        print(case["name"])


if __name__ == "__main__":
    main()
