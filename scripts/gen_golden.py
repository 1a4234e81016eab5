"""Generate golden test vectors for normalization layers with PyTorch (float64).

Run:  venv/bin/python scripts/gen_golden.py     -> writes tests/data/pytorch_golden.json
Then: venv/bin/python scripts/verify_golden.py  -> independent numpy re-derivation

JSON layout (see also the "format" field written into the file):
{
  "format": "...", "torch_version": "...", "dtype": "float64",
  "cases": [
    {
      "name": str, "layer": "BatchNorm1d" | "BatchNorm2d" | "BatchNorm3d" | "LayerNorm"
               | "GroupNorm" | "InstanceNorm1d" | "InstanceNorm2d" | "InstanceNorm3d"
               | "RMSNorm",
      "init_error": null | NormError kind (building the layer from config must fail),
      "config": {constructor kwargs; momentum may be null (= None)},
      "weight": T | null, "bias": T | null,          # parameters (constant for all steps)
      "initial_running_mean": T | null, "initial_running_var": T | null,
      "initial_num_batches_tracked": int | null,
      "dtype": "bfloat16" | "float16",              # only in half-precision cases, see below
      "steps": [
        {"mode": "train" | "eval",
         "input": T, "upstream": T, "output": T,
         "grad_input": T, "grad_weight": T | null, "grad_bias": T | null,
         "running_mean": T | null, "running_var": T | null,   # AFTER this step
         "num_batches_tracked": int | null}                     # AFTER this step
        or, for an input the layer must reject:
        {"mode": "train" | "eval", "input": T, "error": NormError kind}
        or, for PyTorch's BN recalibration (torch.optim.swa_utils.update_bn(batches, layer)):
        {"mode": "recalibrate", "batches": [T, ...],
         "running_mean": T | null, "running_var": T | null, "num_batches_tracked": int | null}
      ]
    }
  ]
}
T = {"shape": [..], "data": [row-major (C order) flat list of float64]}
JSON has no NaN or infinity: in T.data they are the strings "NaN", "Infinity" and
"-Infinity" (the spellings of Python's json module and JavaScript's Number); every other
value is a number.

Gradients are of loss = sum(output * upstream) w.r.t. input, weight, bias, computed
fresh at every step (not accumulated); parameters are NOT updated between steps.
Running statistics carry over from one step to the next.

A half-precision case ("dtype" present) runs its layer in float32 (parameters and running
statistics) on inputs of that dtype: "input" and "upstream" hold the half values (exact in
float64), "output" and "grad_input" PyTorch's half results, the loss is
sum(output.float() * upstream.float()). The cases without "dtype" are float64 throughout.
"""
import json
import math
import os

import torch
import torch.nn as nn
from torch.optim.swa_utils import update_bn

torch.set_default_dtype(torch.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = {
    "BatchNorm1d": nn.BatchNorm1d,
    "BatchNorm2d": nn.BatchNorm2d,
    "BatchNorm3d": nn.BatchNorm3d,
    "LayerNorm": nn.LayerNorm,
    "GroupNorm": nn.GroupNorm,
    "InstanceNorm1d": nn.InstanceNorm1d,
    "InstanceNorm2d": nn.InstanceNorm2d,
    "InstanceNorm3d": nn.InstanceNorm3d,
    "RMSNorm": nn.RMSNorm,
}


def value(v):
    """A float as T.data stores it: a number, or "NaN" / "Infinity" / "-Infinity"."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def T(t):
    if t is None:
        return None
    t = t.detach().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [value(v) for v in t.flatten().tolist()]}


def make_module(layer, config):
    kw = dict(config)
    if layer in ("LayerNorm", "RMSNorm"):
        ns = kw.pop("normalized_shape")
        return LAYERS[layer](ns, **kw)
    if layer == "GroupNorm":
        return nn.GroupNorm(kw.pop("num_groups"), kw.pop("num_channels"), **kw)
    return LAYERS[layer](kw.pop("num_features"), **kw)


def build_case(name, layer, config, steps, seed, preset_running=False,
               default_params=False, x_scale=2.0, x_shift=0.5, poison=None, running=None,
               dtype=None):
    """steps: list of (mode, shape), or ("recalibrate", [shape, ...]) for update_bn over one
    batch of each shape.

    poison: {step index: [(element index, value), ...]} written into that step's input
    (NaN and infinities). running: (mean, var) lists to start the running statistics from.
    dtype: torch.bfloat16 or torch.float16 for a half-precision case (a float32 layer).
    """
    g = torch.Generator().manual_seed(seed)
    m = make_module(layer, config)
    m = m.double() if dtype is None else m.float()

    weight = getattr(m, "weight", None)
    bias = getattr(m, "bias", None)
    with torch.no_grad():
        if not default_params:
            if weight is not None:
                weight.copy_(torch.randn(weight.shape, generator=g) * 0.5 + 1.0)
            if bias is not None:
                bias.copy_(torch.randn(bias.shape, generator=g) * 0.5)
        rm = getattr(m, "running_mean", None)
        rv = getattr(m, "running_var", None)
        if preset_running and rm is not None:
            rm.copy_(torch.randn(rm.shape, generator=g) * 0.5)
            rv.copy_(torch.rand(rv.shape, generator=g) * 1.5 + 0.5)
        if running is not None:
            rm.copy_(torch.tensor(running[0]))
            rv.copy_(torch.tensor(running[1]))

    def buf(name_):
        b = getattr(m, name_, None)
        return None if b is None else b.detach().clone()

    nbt0 = getattr(m, "num_batches_tracked", None)
    case = {
        "name": name,
        "layer": layer,
        "config": config,
        "weight": T(weight),
        "bias": T(bias),
        "initial_running_mean": T(buf("running_mean")),
        "initial_running_var": T(buf("running_var")),
        "initial_num_batches_tracked": None if nbt0 is None else int(nbt0.item()),
        "init_error": None,
        "steps": [],
    }
    if dtype is not None:
        case["dtype"] = str(dtype).split(".")[1]

    def make_input(shape):
        # per-channel offsets make channel means clearly different
        x = torch.randn(shape, generator=g) * x_scale + x_shift
        if len(shape) >= 2 and layer != "LayerNorm":
            off = torch.linspace(-1.0, 1.0, shape[1]).reshape([1, shape[1]] + [1] * (len(shape) - 2))
            x = x + off
        return x

    params = [p for p in (weight, bias) if p is not None]
    for mode, shape in steps:
        if mode == "recalibrate":
            batches = [make_input(batch_shape) for batch_shape in shape]
            update_bn(batches, m)
            nbt = getattr(m, "num_batches_tracked", None)
            case["steps"].append({
                "mode": mode,
                "batches": [T(b) for b in batches],
                "running_mean": T(buf("running_mean")),
                "running_var": T(buf("running_var")),
                "num_batches_tracked": None if nbt is None else int(nbt.item()),
            })
            continue
        m.train(mode == "train")
        x = make_input(shape)
        for index, bad in (poison or {}).get(len(case["steps"]), []):
            x[index] = bad
        up = torch.randn(shape, generator=g)
        if dtype is not None:
            x, up = x.to(dtype), up.to(dtype)
        x.requires_grad_(True)
        y = m(x)
        assert y.dtype == x.dtype, (name, y.dtype)
        loss = (y.float() * up.float()).sum() if dtype is not None else (y * up).sum()
        grads = torch.autograd.grad(loss, [x] + params)
        gx = grads[0]
        gw = gb = None
        k = 1
        if weight is not None:
            gw = grads[k]; k += 1
        if bias is not None:
            gb = grads[k]; k += 1
        nbt = getattr(m, "num_batches_tracked", None)
        case["steps"].append({
            "mode": mode,
            "input": T(x),
            "upstream": T(up),
            "output": T(y),
            "grad_input": T(gx),
            "grad_weight": T(gw),
            "grad_bias": T(gb),
            "running_mean": T(buf("running_mean")),
            "running_var": T(buf("running_var")),
            "num_batches_tracked": None if nbt is None else int(nbt.item()),
        })
    return case


def error_case(name, layer, config, mode, shape, error_kind, at="forward"):
    """A case whose single step must be rejected with a NormError of kind `error_kind`.

    at == "init": constructing the layer from `config` must fail (no steps run).
    at == "forward": the layer builds; running `mode` on an input of `shape` must fail.
    The kind was confirmed against PyTorch by running the same call (see PYTORCH_ERRORS).
    """
    g = torch.Generator().manual_seed(len(name))
    try:
        m = make_module(layer, config).double()
    except Exception as e:  # PyTorch rejects the constructor
        assert at == "init", (name, e)
        return {"name": name, "layer": layer, "config": config, "init_error": error_kind,
                "pytorch_message": f"{type(e).__name__}: {e}", "steps": []}
    assert at == "forward", name
    m.train(mode == "train")
    x = torch.randn(shape, generator=g)
    try:
        m(x)
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
    else:
        raise AssertionError(f"{name}: PyTorch accepted the input")
    return {"name": name, "layer": layer, "config": config, "init_error": None,
            "pytorch_message": msg,
            "steps": [{"mode": mode, "input": T(x), "error": error_kind}]}


def bn_cfg(c, eps=1e-5, momentum=0.1, affine=True, trs=True):
    return {"num_features": c, "eps": eps, "momentum": momentum, "affine": affine,
            "track_running_stats": trs}


def main():
    cases = []
    add = cases.append
    s = iter(range(1000, 100000, 17))

    # ---------------- BatchNorm1d ----------------
    add(build_case("bn1d_2d_m0.1_affine_2train_eval", "BatchNorm1d", bn_cfg(3),
                   [("train", (4, 3)), ("train", (4, 3)), ("eval", (4, 3))], next(s)))
    add(build_case("bn1d_3d_m0.1_affine_2train_eval", "BatchNorm1d", bn_cfg(3),
                   [("train", (4, 3, 5)), ("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("bn1d_2d_default_params_m0.1", "BatchNorm1d", bn_cfg(3),
                   [("train", (4, 3)), ("train", (4, 3))], next(s), default_params=True))
    add(build_case("bn1d_2d_momentum_None_3train_eval", "BatchNorm1d", bn_cfg(3, momentum=None),
                   [("train", (4, 3)), ("train", (4, 3)), ("train", (4, 3)), ("eval", (4, 3))], next(s)))
    add(build_case("bn1d_3d_momentum_None_2train", "BatchNorm1d", bn_cfg(3, momentum=None),
                   [("train", (4, 3, 5)), ("train", (4, 3, 5))], next(s), preset_running=True))
    add(build_case("bn1d_2d_noaffine_m0.1_2train_eval", "BatchNorm1d", bn_cfg(3, affine=False),
                   [("train", (4, 3)), ("train", (4, 3)), ("eval", (4, 3))], next(s)))
    add(build_case("bn1d_2d_no_running_stats_train_eval", "BatchNorm1d", bn_cfg(3, trs=False),
                   [("train", (4, 3)), ("eval", (4, 3))], next(s)))
    add(build_case("bn1d_3d_no_running_stats_noaffine_train_eval", "BatchNorm1d", bn_cfg(3, affine=False, trs=False),
                   [("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("bn1d_3d_m0.5_2train", "BatchNorm1d", bn_cfg(3, momentum=0.5),
                   [("train", (4, 3, 5)), ("train", (4, 3, 5))], next(s)))
    add(build_case("bn1d_2d_m1.0_2train", "BatchNorm1d", bn_cfg(3, momentum=1.0),
                   [("train", (4, 3)), ("train", (4, 3))], next(s)))
    add(build_case("bn1d_2d_m0.0_2train_eval", "BatchNorm1d", bn_cfg(3, momentum=0.0),
                   [("train", (4, 3)), ("train", (4, 3)), ("eval", (4, 3))], next(s), preset_running=True))
    add(build_case("bn1d_2d_eval_preset_running", "BatchNorm1d", bn_cfg(3),
                   [("eval", (4, 3))], next(s), preset_running=True))
    add(build_case("bn1d_2d_eval_single_sample", "BatchNorm1d", bn_cfg(3),
                   [("eval", (1, 3))], next(s), preset_running=True))
    add(build_case("bn1d_2d_eps1e-3_m0.1_2train", "BatchNorm1d", bn_cfg(3, eps=1e-3),
                   [("train", (4, 3)), ("train", (4, 3))], next(s)))
    add(build_case("bn1d_2d_batch2_m0.1_train", "BatchNorm1d", bn_cfg(3),
                   [("train", (2, 3))], next(s)))
    add(build_case("bn1d_3d_batch1_L5_train", "BatchNorm1d", bn_cfg(3),
                   [("train", (1, 3, 5))], next(s)))

    # ---------------- BatchNorm2d ----------------
    add(build_case("bn2d_m0.1_affine_2train_eval", "BatchNorm2d", bn_cfg(3),
                   [("train", (2, 3, 4, 4)), ("train", (2, 3, 4, 4)), ("eval", (2, 3, 4, 4))], next(s)))
    add(build_case("bn2d_momentum_None_2train_eval", "BatchNorm2d", bn_cfg(3, momentum=None),
                   [("train", (2, 3, 4, 4)), ("train", (2, 3, 4, 4)), ("eval", (2, 3, 4, 4))], next(s)))
    add(build_case("bn2d_noaffine_no_running_stats_train_eval", "BatchNorm2d", bn_cfg(3, affine=False, trs=False),
                   [("train", (2, 3, 4, 4)), ("eval", (2, 3, 4, 4))], next(s)))
    add(build_case("bn2d_eval_preset_running", "BatchNorm2d", bn_cfg(3),
                   [("eval", (2, 3, 4, 4))], next(s), preset_running=True))
    add(build_case("bn2d_batch1_m0.3_train", "BatchNorm2d", bn_cfg(3, momentum=0.3),
                   [("train", (1, 3, 4, 4))], next(s)))

    # ---------------- BatchNorm3d ----------------
    add(build_case("bn3d_m0.1_affine_2train_eval", "BatchNorm3d", bn_cfg(3),
                   [("train", (2, 3, 2, 3, 3)), ("train", (2, 3, 2, 3, 3)), ("eval", (2, 3, 2, 3, 3))], next(s)))
    add(build_case("bn3d_noaffine_m0.3_2train", "BatchNorm3d", bn_cfg(3, momentum=0.3, affine=False),
                   [("train", (2, 3, 2, 3, 3)), ("train", (2, 3, 2, 3, 3))], next(s)))

    # ---------------- LayerNorm ----------------
    def ln_cfg(ns, eps=1e-5, affine=True, bias=True):
        return {"normalized_shape": list(ns), "eps": eps, "elementwise_affine": affine, "bias": bias}

    add(build_case("ln_last1_(4,3)", "LayerNorm", ln_cfg([3]), [("train", (4, 3))], next(s)))
    add(build_case("ln_last1_(4,3,5)", "LayerNorm", ln_cfg([5]), [("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("ln_last2_(4,3,5)", "LayerNorm", ln_cfg([3, 5]), [("train", (4, 3, 5))], next(s)))
    add(build_case("ln_last2_(2,3,4,4)", "LayerNorm", ln_cfg([4, 4]), [("train", (2, 3, 4, 4))], next(s)))
    add(build_case("ln_last2_noaffine_(4,3,5)", "LayerNorm", ln_cfg([3, 5], affine=False), [("train", (4, 3, 5))], next(s)))
    add(build_case("ln_last1_nobias_(4,3,5)", "LayerNorm", ln_cfg([5], bias=False), [("train", (4, 3, 5))], next(s)))
    add(build_case("ln_last1_eps1e-3_(4,256)", "LayerNorm", ln_cfg([256], eps=1e-3), [("train", (4, 256))], next(s)))

    # ---------------- GroupNorm ----------------
    def gn_cfg(g, c, eps=1e-5, affine=True):
        return {"num_groups": g, "num_channels": c, "eps": eps, "affine": affine}

    add(build_case("gn_g1_c6_(2,6,4,4)", "GroupNorm", gn_cfg(1, 6), [("train", (2, 6, 4, 4))], next(s)))
    add(build_case("gn_g2_c6_(2,6,4,4)", "GroupNorm", gn_cfg(2, 6), [("train", (2, 6, 4, 4)), ("eval", (2, 6, 4, 4))], next(s)))
    add(build_case("gn_g6_c6_(2,6,4,4)", "GroupNorm", gn_cfg(6, 6), [("train", (2, 6, 4, 4))], next(s)))
    add(build_case("gn_g3_c6_noaffine_(2,6,5)", "GroupNorm", gn_cfg(3, 6, affine=False), [("train", (2, 6, 5))], next(s)))
    add(build_case("gn_g2_c4_2d_(4,4)", "GroupNorm", gn_cfg(2, 4), [("train", (4, 4))], next(s)))
    add(build_case("gn_g3_c3_(2,3,2,3,3)", "GroupNorm", gn_cfg(3, 3), [("train", (2, 3, 2, 3, 3))], next(s)))

    # ---------------- InstanceNorm ----------------
    def in_cfg(c, eps=1e-5, momentum=0.1, affine=False, trs=False):
        return {"num_features": c, "eps": eps, "momentum": momentum, "affine": affine,
                "track_running_stats": trs}

    add(build_case("in1d_default_(4,3,5)", "InstanceNorm1d", in_cfg(3), [("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("in1d_default_unbatched_(3,5)", "InstanceNorm1d", in_cfg(3), [("train", (3, 5))], next(s)))
    add(build_case("in2d_default_(2,3,4,4)", "InstanceNorm2d", in_cfg(3), [("train", (2, 3, 4, 4))], next(s)))
    add(build_case("in2d_affine_(2,3,4,4)", "InstanceNorm2d", in_cfg(3, affine=True), [("train", (2, 3, 4, 4))], next(s)))
    add(build_case("in1d_affine_running_m0.1_2train_eval", "InstanceNorm1d", in_cfg(3, affine=True, trs=True),
                   [("train", (4, 3, 5)), ("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("in3d_affine_(2,3,2,3,3)", "InstanceNorm3d", in_cfg(3, affine=True), [("train", (2, 3, 2, 3, 3))], next(s)))
    add(build_case("in2d_running_m0.2_2train_eval", "InstanceNorm2d", in_cfg(3, momentum=0.2, trs=True),
                   [("train", (2, 3, 4, 4)), ("train", (2, 3, 4, 4)), ("eval", (2, 3, 4, 4))], next(s)))

    # ---------------- inputs PyTorch rejects: the layer must return the named NormError kind ----
    add(error_case("err_bn1d_train_batch1", "BatchNorm1d", bn_cfg(3), "train", (1, 3), "TooFewValues"))
    add(error_case("err_bn2d_train_1x1_batch1", "BatchNorm2d", bn_cfg(3), "train", (1, 3, 1, 1), "TooFewValues"))
    add(error_case("err_bn1d_no_running_eval_batch1", "BatchNorm1d", bn_cfg(3, trs=False), "eval", (1, 3), "TooFewValues"))
    add(error_case("err_bn1d_rank1", "BatchNorm1d", bn_cfg(3), "train", (3,), "InvalidRank"))
    add(error_case("err_bn1d_rank4", "BatchNorm1d", bn_cfg(3), "train", (2, 3, 4, 4), "InvalidRank"))
    add(error_case("err_bn2d_rank3", "BatchNorm2d", bn_cfg(3), "eval", (3, 4, 4), "InvalidRank"))
    add(error_case("err_bn3d_rank4", "BatchNorm3d", bn_cfg(3), "train", (2, 3, 4, 4), "InvalidRank"))
    add(error_case("err_bn1d_channels", "BatchNorm1d", bn_cfg(3), "train", (4, 4), "ChannelMismatch"))
    add(error_case("err_bn2d_channels_eval", "BatchNorm2d", bn_cfg(3), "eval", (2, 4, 3, 3), "ChannelMismatch"))
    add(error_case("err_ln_shape", "LayerNorm", ln_cfg([5]), "train", (4, 3, 4), "NormalizedShapeMismatch"))
    add(error_case("err_ln2_shape", "LayerNorm", ln_cfg([3, 5]), "train", (4, 5, 3), "NormalizedShapeMismatch"))
    add(error_case("err_gn_init_divisible", "GroupNorm", gn_cfg(4, 6), None, None, "GroupsNotDivisible", at="init"))
    add(error_case("err_gn_channels", "GroupNorm", gn_cfg(2, 6), "train", (2, 4, 5), "ChannelMismatch"))
    add(error_case("err_gn_rank1", "GroupNorm", gn_cfg(2, 6), "train", (6,), "InvalidRank"))
    add(error_case("err_gn_one_value", "GroupNorm", gn_cfg(6, 6), "train", (1, 6), "TooFewValues"))
    add(error_case("err_in1d_one_spatial", "InstanceNorm1d", in_cfg(3), "train", (4, 3, 1), "TooFewValues"))
    add(error_case("err_in2d_rank2", "InstanceNorm2d", in_cfg(3), "train", (4, 3), "InvalidRank"))
    add(error_case("err_in2d_affine_channels", "InstanceNorm2d", in_cfg(3, affine=True), "train", (2, 4, 3, 3), "ChannelMismatch"))

    # ---------------- NaN and infinities (after every case of the shared file) ----------------
    # PyTorch propagates them: a NaN or infinity in a channel's (row's, group's) input makes
    # its statistics, its outputs and the running statistics they feed non-finite, and
    # non-finite running statistics reach evaluation outputs. Nothing is cleaned.
    nan, inf = float("nan"), float("inf")
    add(build_case("nonfinite_bn2d_input_train_eval_train", "BatchNorm2d", bn_cfg(4),
                   [("train", (2, 4, 3, 3)), ("eval", (2, 4, 3, 3)), ("train", (2, 4, 3, 3))], next(s),
                   poison={0: [((0, 1, 1, 1), nan), ((1, 2, 0, 2), inf), ((0, 3, 2, 0), -inf)]}))
    add(build_case("nonfinite_bn1d_running_stats_eval_train_eval", "BatchNorm1d", bn_cfg(4),
                   [("eval", (5, 4)), ("train", (5, 4)), ("eval", (5, 4))], next(s),
                   running=([0.1, nan, inf, -0.2], [1.2, 0.8, 1.0, inf])))
    add(build_case("nonfinite_bn1d_no_running_stats_eval", "BatchNorm1d", bn_cfg(3, trs=False),
                   [("eval", (4, 3))], next(s), poison={0: [((1, 0), nan), ((2, 2), -inf)]}))
    add(build_case("nonfinite_bn3d_momentum_None_train", "BatchNorm3d", bn_cfg(2, momentum=None),
                   [("train", (2, 2, 2, 2, 2)), ("train", (2, 2, 2, 2, 2))], next(s),
                   poison={1: [((1, 0, 1, 0, 1), inf)]}))
    add(build_case("nonfinite_in2d_affine_running_train_eval", "InstanceNorm2d",
                   in_cfg(3, affine=True, trs=True), [("train", (2, 3, 3, 3)), ("eval", (2, 3, 3, 3))],
                   next(s), poison={0: [((1, 0, 0, 0), nan), ((0, 2, 1, 1), inf)],
                                    1: [((0, 1, 2, 2), -inf)]}))
    add(build_case("nonfinite_in1d_running_stats_eval", "InstanceNorm1d", in_cfg(3, affine=True, trs=True),
                   [("eval", (2, 3, 4))], next(s), running=([0.0, nan, 0.5], [1.0, 1.0, inf])))
    add(build_case("nonfinite_ln_rows_train_eval", "LayerNorm", ln_cfg([5]),
                   [("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s),
                   poison={0: [((0, 1, 2), nan), ((2, 0, 4), inf), ((3, 2, 0), -inf)],
                           1: [((1, 1, 1), inf)]}))
    add(build_case("nonfinite_gn_groups", "GroupNorm", gn_cfg(2, 4), [("train", (3, 4, 3))], next(s),
                   poison={0: [((0, 1, 1), nan), ((1, 2, 0), inf), ((2, 3, 2), -inf)]}))

    # ---------------- RMSNorm (the project's own, after the shared cases) ----------------
    def rms_cfg(ns, eps=None, affine=True):
        return {"normalized_shape": list(ns), "eps": eps, "elementwise_affine": affine}

    add(build_case("rms_last1_eps_None_(4,3,5)", "RMSNorm", rms_cfg([5]),
                   [("train", (4, 3, 5)), ("eval", (4, 3, 5))], next(s)))
    add(build_case("rms_last2_eps1e-6_(4,3,5)", "RMSNorm", rms_cfg([3, 5], eps=1e-6),
                   [("train", (4, 3, 5))], next(s)))
    add(build_case("rms_last2_(2,3,4,4)", "RMSNorm", rms_cfg([4, 4]), [("train", (2, 3, 4, 4))], next(s)))
    add(build_case("rms_noaffine_(4,8)", "RMSNorm", rms_cfg([8], affine=False), [("train", (4, 8))], next(s)))
    add(build_case("rms_eps0.1_unbatched_(6,)", "RMSNorm", rms_cfg([6], eps=0.1), [("train", (6,))], next(s),
                   x_scale=0.2))
    add(build_case("nonfinite_rms_rows", "RMSNorm", rms_cfg([5]), [("train", (3, 5))], next(s),
                   poison={0: [((0, 2), nan), ((1, 4), inf)]}))
    add(error_case("err_rms_shape", "RMSNorm", rms_cfg([5]), "train", (4, 3, 4), "NormalizedShapeMismatch"))

    # ---------------- BN recalibration: update_bn over a list of batches ----------------
    # update_bn resets every BatchNorm's running statistics, averages the batches' means and
    # unbiased variances (momentum None), restores the momentum and the training mode. Reset
    # first, so non-finite statistics come out finite; a layer that is no BatchNorm is left
    # alone (update_bn returns before any forward when the model has no BatchNorm).
    add(build_case("recal_bn1d_train_recalibrate_eval_train", "BatchNorm1d", bn_cfg(4),
                   [("train", (8, 4)), ("recalibrate", [(16, 4), (16, 4), (5, 4)]), ("eval", (6, 4)),
                    ("train", (8, 4))], next(s)))
    add(build_case("recal_bn2d_nonfinite_running_stats_made_finite", "BatchNorm2d", bn_cfg(3),
                   [("eval", (2, 3, 4, 4)), ("recalibrate", [(4, 3, 4, 4), (2, 3, 4, 4)]),
                    ("eval", (2, 3, 4, 4))], next(s), running=([nan, inf, 0.2], [inf, nan, 1.0])))
    add(build_case("recal_bn3d_momentum_None_no_affine_count_carries_on", "BatchNorm3d",
                   bn_cfg(2, momentum=None, affine=False),
                   [("train", (2, 2, 2, 3, 3)), ("recalibrate", [(3, 2, 2, 3, 3), (1, 2, 2, 3, 3)]),
                    ("train", (2, 2, 2, 3, 3))], next(s)))
    add(build_case("recal_in1d_no_batchnorm_left_alone", "InstanceNorm1d", in_cfg(3, affine=True, trs=True),
                   [("train", (4, 3, 6)), ("recalibrate", [(4, 3, 6), (4, 3, 6)]), ("eval", (4, 3, 6))],
                   next(s)))

    # ---------------- half precision: bfloat16 and float16 inputs to float32 layers ----------------
    for dtype in (torch.bfloat16, torch.float16):
        short = str(dtype).split(".")[1]
        add(build_case(f"half_{short}_bn2d_train_eval", "BatchNorm2d", bn_cfg(3),
                       [("train", (4, 3, 5, 5)), ("eval", (4, 3, 5, 5))], next(s), dtype=dtype))
        add(build_case(f"half_{short}_bn1d_momentum_None_train_train_eval", "BatchNorm1d",
                       bn_cfg(4, momentum=None),
                       [("train", (16, 4)), ("train", (16, 4)), ("eval", (16, 4))], next(s), dtype=dtype))
        add(build_case(f"half_{short}_in2d_affine_running_train_eval", "InstanceNorm2d",
                       in_cfg(3, affine=True, trs=True),
                       [("train", (2, 3, 4, 4)), ("eval", (2, 3, 4, 4))], next(s), dtype=dtype))
        add(build_case(f"half_{short}_gn_(3,4,3,3)", "GroupNorm", gn_cfg(2, 4),
                       [("train", (3, 4, 3, 3))], next(s), dtype=dtype))
        add(build_case(f"half_{short}_ln_(6,5)", "LayerNorm", ln_cfg([5]), [("train", (6, 5))], next(s),
                       dtype=dtype))
        add(build_case(f"half_{short}_rms_eps_None_(6,5)", "RMSNorm", rms_cfg([5]), [("train", (6, 5))],
                       next(s), dtype=dtype))

    doc = {
        "format": ("T = {shape, data(row-major flat float64)}. Each case: layer, config (PyTorch ctor kwargs; "
                   "momentum null = None), weight/bias (null if absent), initial running stats, steps[]. "
                   "Each step: mode train|eval, input, upstream U, output Y, grad_input/grad_weight/grad_bias "
                   "of loss=sum(Y*U) (fresh per step, params never updated), running_mean/var and "
                   "num_batches_tracked AFTER the step. Running stats carry across steps. "
                   "Error cases: init_error (building from config must fail) or a step with "
                   "'error' instead of outputs (that forward must fail), each naming a NormError "
                   "kind: InvalidRank, ChannelMismatch, TooFewValues, NormalizedShapeMismatch, "
                   "GroupsNotDivisible, InvalidConfig. In T.data, NaN and infinities are the "
                   "strings NaN, Infinity and -Infinity. A step with mode 'recalibrate' runs "
                   "torch.optim.swa_utils.update_bn over its 'batches' and records the running "
                   "statistics after. A case with 'dtype' (bfloat16, float16) runs a float32 "
                   "layer on inputs of that dtype: input, upstream, output and grad_input hold "
                   "half values, the loss is sum(Y.float() * U.float())."),
        "torch_version": torch.__version__,
        "dtype": "float64",
        "num_cases": len(cases),
        "cases": cases,
    }
    path = os.path.join(ROOT, "tests", "data", "pytorch_golden.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
    print(f"wrote {path}: {len(cases)} cases, {sum(len(c['steps']) for c in cases)} steps")


if __name__ == "__main__":
    main()
