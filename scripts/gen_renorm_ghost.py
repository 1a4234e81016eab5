"""NumPy references of Batch Renormalization and Ghost Batch Normalization, from the papers'
equations, for `bn_layers::BatchRenorm` and `bn_layers::GhostBatchNorm`.

Batch Renormalization (Ioffe 2017, https://arxiv.org/abs/1702.03275, Algorithm 1), per channel
over the batch and every spatial position:
    mu_B = mean(x), sigma_B = sqrt(mean((x - mu_B)^2) + eps)
    r = clip(sigma_B / sigma, 1/r_max, r_max),  d = clip((mu_B - mu) / sigma, -d_max, d_max)
        (both treated as constants by the backward: stop_gradient)
    x_hat = (x - mu_B) / sigma_B * r + d,  y = gamma * x_hat + beta
    mu += alpha * (mu_B - mu),  sigma += alpha * (sigma_B - sigma)
    inference: y = gamma * (x - mu) / sigma + beta
with r_max = 1 and d_max = 0 for the first `warmup_steps` training steps, then growing linearly
to r_max at `r_max_steps` and to d_max at `d_max_steps` (the paper's schedule, section 4.1; the
step is the number of training batches before this one).

Ghost Batch Normalization (Hoffer, Hubara & Soudry 2017, https://arxiv.org/abs/1705.08741,
Algorithm 1): the batch is split into ghost batches, each normalized with its own statistics,
and the running statistics are updated once per ghost batch, in order. Here a batch of N is
split into k = max(1, N // virtual_batch_size) ghost batches as even as possible (the first
N % k one larger), so none is smaller than virtual_batch_size; the running statistics follow
PyTorch's BatchNorm (momentum 0.1, unbiased variance).

Gradients are of sum(y * upstream), in closed form, each checked here against central finite
differences. Writes tests/data/renorm_ghost.json.
Run: <python with numpy> scripts/gen_renorm_ghost.py [OUT]
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def channel_major(x):
    """[N, C, ...] -> [N, C, S]."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def renorm_limits(step, cfg):
    if step < cfg["warmup_steps"]:
        return 1.0, 0.0

    def ramp(end, full, start_value):
        span = end - cfg["warmup_steps"]
        t = 1.0 if span <= 0 else min(1.0, (step - cfg["warmup_steps"]) / span)
        return start_value + (full - start_value) * t

    return ramp(cfg["r_max_steps"], cfg["r_max"], 1.0), ramp(cfg["d_max_steps"], cfg["d_max"], 0.0)


def renorm_train(x, gamma, beta, mu, sigma, step, cfg, upstream=None, fixed=None):
    """Output, (dx, dgamma, dbeta), the new (mu, sigma) and (r, d); `fixed` holds r and d
    constant (what stop_gradient means, for the finite differences)."""
    eps, alpha = cfg["eps"], cfg["momentum"]
    v = channel_major(x)
    mu_b = v.mean(axis=(0, 2))
    sigma_b = np.sqrt(((v - mu_b[None, :, None]) ** 2).mean(axis=(0, 2)) + eps)
    r_max, d_max = renorm_limits(step, cfg)
    r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)
    d = np.clip((mu_b - mu) / sigma, -d_max, d_max)
    if fixed is not None:
        r, d = fixed
    x0 = (v - mu_b[None, :, None]) / sigma_b[None, :, None]
    x_hat = x0 * r[None, :, None] + d[None, :, None]
    y = gamma[None, :, None] * x_hat + beta[None, :, None]
    grads = None
    if upstream is not None:
        g = channel_major(upstream)
        dgamma = (g * x_hat).sum(axis=(0, 2))
        dbeta = g.sum(axis=(0, 2))
        mean_g = g.mean(axis=(0, 2))[None, :, None]
        mean_gx = (g * x0).mean(axis=(0, 2))[None, :, None]
        dx = (gamma * r / sigma_b)[None, :, None] * (g - mean_g - x0 * mean_gx)
        grads = (dx.reshape(x.shape), dgamma, dbeta)
    new_mu = mu + alpha * (mu_b - mu)
    new_sigma = sigma + alpha * (sigma_b - sigma)
    return y.reshape(x.shape), grads, (new_mu, new_sigma), (r, d)


def renorm_eval(x, gamma, beta, mu, sigma):
    v = channel_major(x)
    y = gamma[None, :, None] * (v - mu[None, :, None]) / sigma[None, :, None] + beta[None, :, None]
    return y.reshape(x.shape)


def ghost_sizes(n, v):
    k = max(1, n // v)
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def bn_train(x, gamma, beta, eps, upstream):
    """PyTorch's BatchNorm in training mode: output, grads, batch mean, biased variance."""
    v = channel_major(x)
    mean = v.mean(axis=(0, 2))
    var = ((v - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    std = np.sqrt(var + eps)
    x_hat = (v - mean[None, :, None]) / std[None, :, None]
    y = gamma[None, :, None] * x_hat + beta[None, :, None]
    g = channel_major(upstream)
    dgamma = (g * x_hat).sum(axis=(0, 2))
    dbeta = g.sum(axis=(0, 2))
    dx = (gamma / std)[None, :, None] * (
        g - g.mean(axis=(0, 2))[None, :, None] - x_hat * (g * x_hat).mean(axis=(0, 2))[None, :, None])
    return y.reshape(x.shape), (dx.reshape(x.shape), dgamma, dbeta), mean, var, v.shape[0] * v.shape[2]


def ghost_train(x, gamma, beta, mean, var, count, cfg, upstream):
    ys, dxs = [], []
    dgamma, dbeta = np.zeros_like(gamma), np.zeros_like(beta)
    start = 0
    for size in ghost_sizes(x.shape[0], cfg["virtual_batch_size"]):
        xs, gs = x[start:start + size], upstream[start:start + size]
        y, (dx, dg, db), m, v, n = bn_train(xs, gamma, beta, cfg["eps"], gs)
        ys.append(y)
        dxs.append(dx)
        dgamma, dbeta = dgamma + dg, dbeta + db
        mom = cfg["momentum"]
        mean = (1 - mom) * mean + mom * m
        var = (1 - mom) * var + mom * v * n / (n - 1)
        count += 1
        start += size
    return np.concatenate(ys), (np.concatenate(dxs), dgamma, dbeta), (mean, var, count)


def check_grads(forward, x, gamma, beta, upstream, grads, what):
    """Central finite differences of sum(forward(...) * upstream) at a few points."""
    h = 1e-6
    for name, array, grad in [("x", x, grads[0]), ("gamma", gamma, grads[1]), ("beta", beta, grads[2])]:
        flat, gflat = array.reshape(-1), grad.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):
            old = flat[i]
            flat[i] = old + h
            plus = (forward(x, gamma, beta) * upstream).sum()
            flat[i] = old - h
            minus = (forward(x, gamma, beta) * upstream).sum()
            flat[i] = old
            numeric = (plus - minus) / (2 * h)
            assert abs(numeric - gflat[i]) < 1e-5 * max(1, abs(numeric)), (what, name, i, numeric, gflat[i])


def t(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": a.reshape(-1).tolist()}


def renorm_case(name, shape, cfg, steps, rng):
    c = shape[1]
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.uniform(-0.5, 0.5, c)
    mu, sigma = np.zeros(c), np.ones(c)
    out_steps = []
    for step in range(steps):
        x = rng.normal(rng.uniform(-2, 2, c)[None, :] .reshape([1, c] + [1] * (len(shape) - 2)),
                       rng.uniform(0.5, 3, c).reshape([1, c] + [1] * (len(shape) - 2)), size=shape)
        g = rng.normal(size=shape)
        y, grads, (new_mu, new_sigma), r_d = renorm_train(x, gamma, beta, mu, sigma, step, cfg, g)
        check_grads(lambda x_, g_, b_: renorm_train(x_, g_, b_, mu, sigma, step, cfg, fixed=r_d)[0],
                    x, gamma, beta, g, grads, name)
        r_max, d_max = renorm_limits(step, cfg)
        out_steps.append({"mode": "train", "r_max": r_max, "d_max": d_max, "input": t(x),
                          "upstream": t(g), "output": t(y), "grad_input": t(grads[0]),
                          "grad_gamma": t(grads[1]), "grad_beta": t(grads[2]),
                          "running_mean": t(new_mu), "running_std": t(new_sigma)})
        mu, sigma = new_mu, new_sigma
    x = rng.normal(size=shape)
    out_steps.append({"mode": "eval", "input": t(x), "output": t(renorm_eval(x, gamma, beta, mu, sigma))})
    return {"name": name, "layer": "BatchRenorm", "config": cfg, "gamma": t(gamma), "beta": t(beta),
            "steps": out_steps}


def ghost_case(name, shape, cfg, steps, rng):
    c = shape[1]
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.uniform(-0.5, 0.5, c)
    mean, var, count = np.zeros(c), np.ones(c), 0
    out_steps = []
    for _ in range(steps):
        x = rng.normal(1.0, 2.0, size=shape)
        g = rng.normal(size=shape)
        y, grads, (mean, var, count) = ghost_train(x, gamma, beta, mean, var, count, cfg, g)
        check_grads(lambda x_, g_, b_: ghost_train(x_, g_, b_, mean, var, count, cfg, g)[0],
                    x, gamma, beta, g, grads, name)
        out_steps.append({"mode": "train", "ghost_batches": ghost_sizes(shape[0], cfg["virtual_batch_size"]),
                          "input": t(x), "upstream": t(g), "output": t(y), "grad_input": t(grads[0]),
                          "grad_gamma": t(grads[1]), "grad_beta": t(grads[2]),
                          "running_mean": t(mean), "running_var": t(var), "num_batches_tracked": count})
    x = rng.normal(size=shape)
    v = channel_major(x)
    y = (gamma[None, :, None] * (v - mean[None, :, None]) / np.sqrt(var + cfg["eps"])[None, :, None]
         + beta[None, :, None]).reshape(x.shape)
    out_steps.append({"mode": "eval", "input": t(x), "output": t(y)})
    return {"name": name, "layer": "GhostBatchNorm", "config": cfg, "gamma": t(gamma), "beta": t(beta),
            "steps": out_steps}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data")
    rng = np.random.default_rng(2017)
    renorm = {"eps": 1e-3, "momentum": 0.3, "r_max": 3.0, "d_max": 5.0,
              "warmup_steps": 1, "r_max_steps": 4, "d_max_steps": 3}
    cases = [
        renorm_case("renorm_2d_warmup", [6, 3], renorm, 6, rng),
        renorm_case("renorm_4d_warmup", [3, 2, 2, 3], renorm, 6, rng),
        renorm_case("renorm_no_warmup_tight", [5, 4],
                    dict(renorm, warmup_steps=0, r_max_steps=0, d_max_steps=0, r_max=1.5, d_max=0.5), 3, rng),
        ghost_case("ghost_even", [8, 3], {"eps": 1e-5, "momentum": 0.1, "virtual_batch_size": 2}, 2, rng),
        ghost_case("ghost_uneven_4d", [7, 2, 2, 2], {"eps": 1e-5, "momentum": 0.1, "virtual_batch_size": 3}, 2, rng),
        ghost_case("ghost_one_batch", [3, 2], {"eps": 1e-5, "momentum": 0.1, "virtual_batch_size": 4}, 1, rng),
    ]
    doc = {"generator": "scripts/gen_renorm_ghost.py", "numpy_version": np.__version__,
           "format": "T = {shape, data (row-major)}; each case: layer, config, gamma, beta, then steps "
                     "in order: train steps (input, upstream, output, grad_input/gamma/beta of "
                     "sum(output * upstream), the running statistics after) and one eval step",
           "cases": cases}
    with open(os.path.join(out, "renorm_ghost.json"), "w") as f:
        json.dump(doc, f, indent=None)
    for case in cases:
        print(case["name"], case["layer"], len(case["steps"]), "steps")


if __name__ == "__main__":
    main()
