"""Independent numpy re-implementation of the PyTorch normalization semantics,
checked against tests/data/pytorch_golden.json. Doubles as a readable spec for the Rust port.

Run: venv/bin/python verify_golden.py   (needs only numpy)
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arr(t):
    return None if t is None else np.array(t["data"], dtype=np.float64).reshape(t["shape"])


def normalize_rows(xr, mean, var, eps):
    """xr: (R, M) rows; mean/var: (R,) -> xhat, rstd"""
    rstd = 1.0 / np.sqrt(var + eps)
    return (xr - mean[:, None]) * rstd[:, None], rstd


def train_backward_rows(gr, xhat, rstd):
    """dL/dx for rows normalised with their own (biased) stats; gr = dL/dxhat rows."""
    m = gr.shape[1]
    return rstd[:, None] * (gr - gr.sum(1, keepdims=True) / m - xhat * (gr * xhat).sum(1, keepdims=True) / m)


def run_step(layer, cfg, state, w, b, mode, x, up):
    eps = cfg["eps"]
    out = {}
    if layer.startswith("BatchNorm"):
        C = x.shape[1]
        xr = np.moveaxis(x, 1, 0).reshape(C, -1)           # rows = channels
        n = xr.shape[1]
        use_batch = mode == "train" or state["rm"] is None
        if use_batch:
            if mode == "train" and n <= 1:
                raise ValueError("Expected more than 1 value per channel when training")
            mean, var = xr.mean(1), xr.var(1)              # biased for normalisation
            if mode == "train" and state["rm"] is not None:
                state["nbt"] += 1
                mom = cfg["momentum"]
                f = 1.0 / state["nbt"] if mom is None else mom
                state["rm"] = (1 - f) * state["rm"] + f * mean
                state["rv"] = (1 - f) * state["rv"] + f * xr.var(1, ddof=1)   # UNBIASED
        else:
            mean, var = state["rm"], state["rv"]
        xhat_r, rstd = normalize_rows(xr, mean, var, eps)
        shp = [1, C] + [1] * (x.ndim - 2)
        wf = np.ones(C) if w is None else w
        bf = np.zeros(C) if b is None else b
        xhat = np.moveaxis(xhat_r.reshape([C, x.shape[0]] + list(x.shape[2:])), 0, 1)
        y = xhat * wf.reshape(shp) + bf.reshape(shp)
        g_hat = up * wf.reshape(shp)
        gr = np.moveaxis(g_hat, 1, 0).reshape(C, -1)
        if use_batch:
            dx_r = train_backward_rows(gr, xhat_r, rstd)
        else:
            dx_r = gr * rstd[:, None]
        dx = np.moveaxis(dx_r.reshape([C, x.shape[0]] + list(x.shape[2:])), 0, 1)
        red = tuple(i for i in range(x.ndim) if i != 1)
        out.update(y=y, dx=dx, dw=(up * xhat).sum(red), db=up.sum(red))
    elif layer == "LayerNorm":
        ns = cfg["normalized_shape"]
        k = len(ns)
        M = int(np.prod(ns))
        xr = x.reshape(-1, M)
        xhat_r, rstd = normalize_rows(xr, xr.mean(1), xr.var(1), eps)
        xhat = xhat_r.reshape(x.shape)
        wf = np.ones(ns) if w is None else w
        bf = np.zeros(ns) if b is None else b
        y = xhat * wf + bf
        dx = train_backward_rows((up * wf).reshape(-1, M), xhat_r, rstd).reshape(x.shape)
        red = tuple(range(x.ndim - k))
        out.update(y=y, dx=dx, dw=(up * xhat).sum(red), db=up.sum(red))
    elif layer == "GroupNorm":
        G, C = cfg["num_groups"], cfg["num_channels"]
        N = x.shape[0]
        xr = x.reshape(N * G, -1)
        xhat_r, rstd = normalize_rows(xr, xr.mean(1), xr.var(1), eps)
        xhat = xhat_r.reshape(x.shape)
        shp = [1, C] + [1] * (x.ndim - 2)
        wf = np.ones(C) if w is None else w
        bf = np.zeros(C) if b is None else b
        y = xhat * wf.reshape(shp) + bf.reshape(shp)
        dx = train_backward_rows((up * wf.reshape(shp)).reshape(N * G, -1), xhat_r, rstd).reshape(x.shape)
        red = tuple(i for i in range(x.ndim) if i != 1)
        out.update(y=y, dx=dx, dw=(up * xhat).sum(red), db=up.sum(red))
    elif layer.startswith("InstanceNorm"):
        batched_rank = 3 if layer == "InstanceNorm1d" else 4
        unbatched = x.ndim == batched_rank - 1
        xb, upb = (x[None], up[None]) if unbatched else (x, up)
        N, C = xb.shape[:2]
        xr = xb.reshape(N * C, -1)
        use_input = mode == "train" or state["rm"] is None
        if use_input:
            mean, var = xr.mean(1), xr.var(1)
            if mode == "train" and state["rm"] is not None:
                mom = cfg["momentum"] if cfg["momentum"] is not None else 0.0   # None -> 0: frozen
                # average the per-instance stats over N, then EMA (no num_batches_tracked increment)
                state["rm"] = (1 - mom) * state["rm"] + mom * mean.reshape(N, C).mean(0)
                state["rv"] = (1 - mom) * state["rv"] + mom * xr.var(1, ddof=1).reshape(N, C).mean(0)
        else:
            mean, var = np.tile(state["rm"], N), np.tile(state["rv"], N)
        xhat_r, rstd = normalize_rows(xr, mean, var, eps)
        xhat = xhat_r.reshape(xb.shape)
        shp = [1, C] + [1] * (xb.ndim - 2)
        wf = np.ones(C) if w is None else w
        bf = np.zeros(C) if b is None else b
        y = xhat * wf.reshape(shp) + bf.reshape(shp)
        gr = (upb * wf.reshape(shp)).reshape(N * C, -1)
        dx_r = train_backward_rows(gr, xhat_r, rstd) if use_input else gr * rstd[:, None]
        dx = dx_r.reshape(xb.shape)
        red = tuple(i for i in range(xb.ndim) if i != 1)
        dw, db = (upb * xhat).sum(red), upb.sum(red)
        if unbatched:
            y, dx = y[0], dx[0]
        out.update(y=y, dx=dx, dw=dw, db=db)
    elif layer == "RMSNorm":
        # y = x / sqrt(mean(x^2) + eps) * w over the trailing dims; eps None = finfo(float64).eps.
        ns = cfg["normalized_shape"]
        k = len(ns)
        M = int(np.prod(ns))
        e = np.finfo(np.float64).eps if eps is None else eps
        xr = x.reshape(-1, M)
        r = 1.0 / np.sqrt((xr * xr).mean(1) + e)
        xhat = (xr * r[:, None]).reshape(x.shape)
        wf = np.ones(ns) if w is None else w
        g = (up * wf).reshape(-1, M)
        # d(x_j r)/dx: r g_j - x_j r^3 (g . x) / M
        dx = r[:, None] * g - xr * (r ** 3)[:, None] * (g * xr).sum(1, keepdims=True) / M
        red = tuple(range(x.ndim - k))
        out.update(y=xhat * wf, dx=dx.reshape(x.shape), dw=(up * xhat).sum(red), db=None)
    else:
        raise ValueError(layer)
    return out


def close(a, b_, name, case, tol=1e-10):
    if a is None and b_ is None:
        return 0.0
    if (a is None) != (b_ is None):
        raise AssertionError(f"{case}: {name} presence mismatch ({a is None} vs {b_ is None})")
    a = np.asarray(a, dtype=np.float64)
    assert a.shape == b_.shape, f"{case}: {name} shape {a.shape} vs {b_.shape}"
    # NaN and infinities (the nonfinite_* cases) must sit at the same places, with the same sign.
    special = ~np.isfinite(b_)
    same = np.where(np.isnan(b_), np.isnan(a), a == b_)
    if not np.all(same[special]) or not np.all(np.isfinite(a[~special])):
        raise AssertionError(f"{case}: {name} NaN/infinity pattern differs")
    finite = ~special
    err = float(np.max(np.abs(a[finite] - b_[finite]) / (1.0 + np.abs(b_[finite])))) if finite.any() else 0.0
    if err > tol:
        raise AssertionError(f"{case}: {name} rel err {err}")
    return err


def recalibrate(layer, cfg, state, batches):
    """torch.optim.swa_utils.update_bn on one layer: a BatchNorm's statistics become the
    average of the batches' means and unbiased variances, counted from 0; any other layer is
    left alone (update_bn runs no forward without a BatchNorm)."""
    if not layer.startswith("BatchNorm") or state["rm"] is None:
        return
    rows = [np.moveaxis(x, 1, 0).reshape(x.shape[1], -1) for x in batches]
    state["rm"] = np.mean([r.mean(1) for r in rows], axis=0)
    state["rv"] = np.mean([r.var(1, ddof=1) for r in rows], axis=0)
    state["nbt"] = len(batches)


# What a half-precision case is checked to: the outputs are bfloat16 (8 significant bits) or
# float16 (11), rounded from float32 arithmetic; the re-derivation here is float64.
HALF_TOLERANCE = 1e-2


def main():
    doc = json.load(open(os.path.join(ROOT, "tests", "data", "pytorch_golden.json")))
    np.seterr(invalid="ignore", over="ignore")  # the nonfinite_* cases compute with NaN on purpose
    worst = 0.0
    for c in doc["cases"]:
        if c.get("init_error") or any("error" in st for st in c["steps"]):
            continue  # rejection cases: the generator checked them against PyTorch itself
        cfg, layer = c["config"], c["layer"]
        w, b = arr(c["weight"]), arr(c["bias"])
        state = {"rm": arr(c["initial_running_mean"]), "rv": arr(c["initial_running_var"]),
                 "nbt": c["initial_num_batches_tracked"]}
        tol = HALF_TOLERANCE if "dtype" in c else 1e-10
        for i, st in enumerate(c["steps"]):
            tag = f"{c['name']}[{i}]"
            if st["mode"] == "recalibrate":
                recalibrate(layer, cfg, state, [arr(x) for x in st["batches"]])
                errs = [close(state["rm"], arr(st["running_mean"]), "running_mean", tag),
                        close(state["rv"], arr(st["running_var"]), "running_var", tag)]
                if st["num_batches_tracked"] != state["nbt"]:
                    raise AssertionError(f"{tag}: nbt {state['nbt']} vs {st['num_batches_tracked']}")
                worst = max(worst, *errs)
                continue
            x, up = arr(st["input"]), arr(st["upstream"])
            o = run_step(layer, cfg, state, w, b, st["mode"], x, up)
            errs = [close(o["y"], arr(st["output"]), "output", tag, tol),
                    close(o["dx"], arr(st["grad_input"]), "grad_input", tag, tol),
                    close(None if w is None else o["dw"], arr(st["grad_weight"]), "grad_weight", tag, tol),
                    close(None if b is None else o["db"], arr(st["grad_bias"]), "grad_bias", tag, tol),
                    close(state["rm"], arr(st["running_mean"]), "running_mean", tag, tol),
                    close(state["rv"], arr(st["running_var"]), "running_var", tag, tol)]
            if st["num_batches_tracked"] != state["nbt"]:
                raise AssertionError(f"{tag}: nbt {state['nbt']} vs {st['num_batches_tracked']}")
            if "dtype" not in c:
                worst = max(worst, *errs)
        print(f"ok  {c['name']:45s} {layer} {c.get('dtype', '')}")
    print(f"ALL {len(doc['cases'])} cases match; worst relative error {worst:.3e} "
          f"(half-precision cases within {HALF_TOLERANCE})")


if __name__ == "__main__":
    sys.exit(main())
