#!/usr/bin/env python3
"""Precision golden cases: inputs with large means and small spreads, where a one-pass
variance or an uncentred backward loses digits in float32.

    python scripts/gen_precision_golden.py      # writes tests/data/precision_golden.json

The format is scripts/gen_golden.py's (see its docstring), plus one field per
step: "float32" holds PyTorch's own float32 results for the same step (output, grad_input,
grad_weight, grad_bias, running_mean, running_var). Every input, upstream gradient and
parameter is a float32 value (stored exactly in the float64 JSON), and the float64 reference
is computed from those same float32 values, so an error measured against the reference is
the arithmetic's alone, not the rounding of the inputs. The conformance runner in f32 mode
holds our error on each quantity to at most twice PyTorch's float32 error.
"""
import json
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "precision_golden.json")


def T(t):
    if t is None:
        return None
    t = t.detach().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def make(layer, config):
    kw = dict(config)
    if layer == "LayerNorm":
        return nn.LayerNorm(kw.pop("normalized_shape"), **kw)
    if layer == "GroupNorm":
        return nn.GroupNorm(kw.pop("num_groups"), kw.pop("num_channels"), **kw)
    return getattr(nn, layer)(kw.pop("num_features"), **kw)


def f32(t):
    """Rounded to float32, carried as float64."""
    return t.float().double()


def run(module, x, up, params):
    x = x.clone().requires_grad_(True)
    y = module(x)
    grads = torch.autograd.grad((y * up).sum(), [x] + params)
    named = dict(zip(["grad_input"] + [n for n, _ in module.named_parameters()], grads))
    buf = lambda n: getattr(module, n, None)  # noqa: E731
    return {
        "output": T(y),
        "grad_input": T(named["grad_input"]),
        "grad_weight": T(named.get("weight")),
        "grad_bias": T(named.get("bias")),
        "running_mean": T(buf("running_mean")),
        "running_var": T(buf("running_var")),
    }, buf("num_batches_tracked")


def case(name, layer, config, modes, shape, mean, spread, seed):
    g = torch.Generator().manual_seed(seed)
    m64 = make(layer, config).double()
    with torch.no_grad():
        for p in m64.parameters():
            p.copy_(f32(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5 + 1.0))
    m32 = make(layer, config).float()
    m32.load_state_dict(m64.state_dict())
    buf = lambda m, n: getattr(m, n, None)  # noqa: E731
    out = {"name": name, "layer": layer, "config": config,
           "weight": T(buf(m64, "weight")), "bias": T(buf(m64, "bias")),
           "initial_running_mean": T(buf(m64, "running_mean")),
           "initial_running_var": T(buf(m64, "running_var")),
           "initial_num_batches_tracked": 0 if buf(m64, "num_batches_tracked") is not None else None,
           "init_error": None, "steps": []}
    for mode in modes:
        m64.train(mode == "train")
        m32.train(mode == "train")
        x = f32(torch.randn(shape, generator=g, dtype=torch.float64) * spread + mean)
        up = f32(torch.randn(shape, generator=g, dtype=torch.float64))
        ref, count = run(m64, x, up, list(m64.parameters()))
        got32, _ = run(m32, x.float(), up.float(), list(m32.parameters()))
        step = {"mode": mode, "input": T(x), "upstream": T(up), **ref,
                "num_batches_tracked": None if count is None else int(count.item()),
                "float32": got32}
        out["steps"].append(step)
    return out


def bn(c):
    return {"num_features": c, "eps": 1e-5, "momentum": 0.1, "affine": True,
            "track_running_stats": True}


def main():
    torch.manual_seed(0)
    cases = [
        case("bn1d_4096_rows_mean_1e4", "BatchNorm1d", bn(2), ["train", "eval"],
             (4096, 2), 1e4, 1.0, 1),
        case("bn1d_4096_rows_mean_3_spread_1e-3", "BatchNorm1d", bn(2), ["train", "eval"],
             (4096, 2), 3.0, 1e-3, 2),
        case("bn2d_mean_1e4", "BatchNorm2d", bn(3), ["train", "train", "eval"],
             (4, 3, 12, 12), 1e4, 1.0, 3),
        case("bn2d_mean_3_spread_1e-3", "BatchNorm2d", bn(3), ["train", "eval"],
             (4, 3, 12, 12), 3.0, 1e-3, 4),
        case("layernorm_mean_1e4", "LayerNorm", {"normalized_shape": [256], "eps": 1e-5},
             ["train"], (16, 256), 1e4, 1.0, 5),
        case("layernorm_mean_3_spread_1e-3", "LayerNorm",
             {"normalized_shape": [256], "eps": 1e-5}, ["train"], (16, 256), 3.0, 1e-3, 6),
        case("groupnorm_mean_1e4", "GroupNorm",
             {"num_groups": 4, "num_channels": 8, "eps": 1e-5, "affine": True},
             ["train"], (2, 8, 6, 6), 1e4, 1.0, 7),
        case("groupnorm_mean_3_spread_1e-3", "GroupNorm",
             {"num_groups": 4, "num_channels": 8, "eps": 1e-5, "affine": True},
             ["train"], (2, 8, 6, 6), 3.0, 1e-3, 8),
        case("instancenorm2d_affine_mean_1e4", "InstanceNorm2d",
             {"num_features": 3, "eps": 1e-5, "momentum": 0.1, "affine": True,
              "track_running_stats": False}, ["train"], (2, 3, 12, 12), 1e4, 1.0, 9),
    ]
    doc = {"format": "scripts/gen_golden.py's, plus per-step 'float32': PyTorch's "
                     "float32 results on the same float32 inputs (scripts/gen_precision_golden.py)",
           "torch_version": torch.__version__, "dtype": "float64", "num_cases": len(cases),
           "cases": cases}
    with open(OUT, "w") as f:
        json.dump(doc, f)
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
