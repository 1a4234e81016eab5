#!/usr/bin/env python3
"""PyTorch's CPU normalization layers (float32, 2 threads) timed with the harness of
benches/norm_plain.rs, step for step, so the two can be compared as ratios in one run.

    python bench_norm.py [--json PATH] [--only TEXT]

Derived from shared/baselines/bench_norm.py (which stays as it is): the same timing rule (the
lowest of 5 trial medians; a trial is at least 10 steps and 0.3 s), the same modes as ours:
  train_fwd      y = module(x) with autograd recording (the backward runs after it, untimed)
  train_fwd_bwd  y = module(x); (y * dy).sum().backward()
  eval_fwd       module.eval(); with torch.no_grad(): module(x)
and the shapes of bench_norm.py plus BatchNorm3d and InstanceNorm2d(64, affine).
Minor page faults per step come from resource.getrusage.
"""
import argparse
import json
import os
import platform
import resource
import time

import torch
import torch.nn as nn

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
torch.manual_seed(0)

CASES = [
    ("BatchNorm2d(6) (128, 6, 24, 24)", lambda: nn.BatchNorm2d(6), (128, 6, 24, 24)),
    ("BatchNorm2d(16) (128, 16, 8, 8)", lambda: nn.BatchNorm2d(16), (128, 16, 8, 8)),
    ("BatchNorm2d(64) (256, 64, 32, 32)", lambda: nn.BatchNorm2d(64), (256, 64, 32, 32)),
    ("BatchNorm3d(16) (8, 16, 16, 32, 32)", lambda: nn.BatchNorm3d(16), (8, 16, 16, 32, 32)),
    ("BatchNorm1d(256) (128, 256)", lambda: nn.BatchNorm1d(256), (128, 256)),
    ("BatchNorm1d(120) (128, 120)", lambda: nn.BatchNorm1d(120), (128, 120)),
    ("LayerNorm(256) (4096, 256)", lambda: nn.LayerNorm(256), (4096, 256)),
    ("GroupNorm(8, 64) (64, 64, 32, 32)", lambda: nn.GroupNorm(8, 64), (64, 64, 32, 32)),
    ("InstanceNorm2d(64, affine) (32, 64, 32, 32)",
     lambda: nn.InstanceNorm2d(64, affine=True), (32, 64, 32, 32)),
]


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(step):
    """`step()` returns the seconds that count; the lowest of 5 trial medians, in ms."""
    for _ in range(3):
        step()
    best, fastest, reps, faults = float("inf"), float("inf"), 0, 0
    for _ in range(5):
        times = []
        started = time.perf_counter()
        while len(times) < 1000 and (len(times) < 10 or time.perf_counter() - started < 0.3):
            before = minor_faults()
            times.append(step() * 1e3)
            faults += minor_faults() - before
        times.sort()
        best = min(best, times[len(times) // 2])
        fastest = min(fastest, times[0])
        reps += len(times)
    return {"median_ms": best, "min_ms": fastest, "reps": reps, "faults_per_rep": faults / reps}


def bench(label, make, shape):
    module = make()
    module.train()
    x = torch.randn(shape)
    dy = torch.randn(shape)

    def backward(y):
        (y * dy).sum().backward()

    def train_fwd():
        xg = x.clone().requires_grad_(True)
        started = time.perf_counter()
        y = module(xg)
        elapsed = time.perf_counter() - started
        backward(y)
        return elapsed

    def train_fwd_bwd():
        xg = x.clone().requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        started = time.perf_counter()
        backward(module(xg))
        return time.perf_counter() - started

    def eval_fwd():
        started = time.perf_counter()
        with torch.no_grad():
            module(x)
        return time.perf_counter() - started

    result = {"label": label, "shape": list(shape), "numel": x.numel(),
              "train_fwd": timed(train_fwd), "train_fwd_bwd": timed(train_fwd_bwd)}
    module.eval()
    result["eval_fwd"] = timed(eval_fwd)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json")
    parser.add_argument("--only")
    args = parser.parse_args()
    try:
        cpu = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
               if line.startswith("model name")][0]
    except (OSError, IndexError):
        cpu = platform.processor()
    report = {"implementation": f"PyTorch {torch.__version__}", "threads": torch.get_num_threads(),
              "cpu": cpu, "benches": []}
    for label, make, shape in CASES:
        if args.only and args.only not in label:
            continue
        r = bench(label, make, shape)
        report["benches"].append(r)
        print(f"{label:40} train_fwd {r['train_fwd']['median_ms']:8.3f} ms | train_fwd_bwd "
              f"{r['train_fwd_bwd']['median_ms']:8.3f} ms "
              f"({r['train_fwd_bwd']['faults_per_rep']:6.0f} faults) | eval_fwd "
              f"{r['eval_fwd']['median_ms']:8.3f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
