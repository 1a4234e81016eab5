#!/usr/bin/env python3
"""Side-by-side performance report: our normalization layers and BN-LeNet training against
PyTorch on this machine, in one session. Writes the tables of docs/performance.md (between its
GENERATED markers; the hand-written analysis around them stays).

    python3 benches/performance_report.py [--python VENV/bin/python] [--shared ../shared]

Runs, in order:
  1. PyTorch's micro-benchmarks: shared/baselines/bench_norm.py (imported, its JSON written to
     a temporary directory, not into shared/);
  2. ours: `cargo bench --features wgpu,ndarray --bench norm` (criterion, flex);
  3. BN-LeNet training, the seeds' recipe (SGD lr 0.1, batch 128), one epoch each:
     shared/baselines/train_lenet.py and our main job (`--limit-test 128`, so evaluation
     hardly counts, as PyTorch's timing leaves evaluation out).

PyTorch must be importable by --python (default: $PYTHON, else python3). Without it:
    python3 -m venv .venv && .venv/bin/pip install torch numpy
    python3 benches/performance_report.py --python .venv/bin/python
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "wgpu,ndarray"
BEGIN, END = "<!-- BEGIN GENERATED: benches/performance_report.py -->", "<!-- END GENERATED -->"

# (PyTorch label, our criterion group, minimum bytes multiplier per mode): bench_norm.py's
# GB/s convention, forward = read x + write y, forward+backward = + read x, dy, write dx.
CASES = [
    ("BatchNorm2d(6)", "BatchNorm2d(6) [128, 6, 24, 24]"),
    ("BatchNorm2d(16)", "BatchNorm2d(16) [128, 16, 8, 8]"),
    ("BatchNorm2d(64)", "BatchNorm2d(64) [256, 64, 32, 32]"),
    ("LayerNorm(256)", "LayerNorm(256) [4096, 256]"),
    ("GroupNorm(8,64)", "GroupNorm(8,64) [64, 64, 32, 32]"),
    ("BatchNorm1d(256)", "BatchNorm1d(256) [128, 256]"),
    ("BatchNorm1d(120)", "BatchNorm1d(120) [128, 120]"),
]
MODES = [  # (our mode, PyTorch key, bytes per element)
    ("train_fwd", "fwd_autograd", 8),
    ("train_fwd_bwd", "fwd_bwd", 20),
    ("eval_fwd", "fwd_eval_nograd", 8),
]
IMPLS = ["fused", "composed", "burn-nn"]


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def check_torch(python):
    probe = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"error: {python} cannot import torch and numpy. Create a virtual environment:\n"
                 "  python3 -m venv .venv && .venv/bin/pip install torch numpy\n"
                 "and run: python3 benches/performance_report.py --python .venv/bin/python")
    return probe.stdout.strip()


def pytorch_micro(python, shared, out_dir):
    script = shared / "baselines" / "bench_norm.py"
    code = ("import runpy, sys; sys.argv = ['bench_norm.py', 'report']; "
            f"g = runpy.run_path({str(script)!r}, run_name='bench'); "
            f"g['HERE'] = {str(out_dir)!r}; g['main'].__globals__['HERE'] = {str(out_dir)!r}; "
            "g['main']()")
    subprocess.run([python, "-c", code], check=True)
    return json.loads((out_dir / "bench_norm_report.json").read_text())


def our_micro():
    subprocess.run(["cargo", "bench", "--features", FEATURES, "--bench", "norm"], cwd=ROOT,
                   check=True)
    results = {}
    for bench in (target_dir() / "criterion").rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        group = meta["group_id"]
        if not group.startswith("norm/"):
            continue
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        mode, impl = meta["function_id"].split("/")
        results[(group[len("norm/"):], mode, impl)] = estimates["median"]["point_estimate"] / 1e6
    return results


def pytorch_training(python, shared, out_dir):
    out = out_dir / "lenet.json"
    subprocess.run([python, str(shared / "baselines" / "train_lenet.py"), "--bn", "--epochs", "1",
                    "--out", str(out)], check=True)
    epoch = json.loads(out.read_text())["epochs"][0]
    return epoch["img_per_s"]


def our_training(out_dir):
    artifacts = out_dir / "lenet"
    subprocess.run(["cargo", "run", "--release", "--features", FEATURES, "--example",
                    "lenet_fashion_mnist", "--", "--backend", "flex", "--momentum", "0",
                    "--schedule", "constant", "--epochs", "1", "--limit-test", "128",
                    "--artifact-dir", str(artifacts)], cwd=ROOT, check=True)
    return json.loads((artifacts / "report.json").read_text())["images_per_second"]


def tables(torch_version, pytorch, ours, torch_ips, our_ips):
    by_label = {b["label"]: b for b in pytorch["benches"]}
    lines = [f"Measured in one session by `benches/performance_report.py`: PyTorch {torch_version} "
             f"({pytorch['threads']} threads, {pytorch['cpu']}) and ours on flex. Times are "
             "medians in ms; GB/s = minimum bytes / time (bench_norm.py's convention); "
             "ratio = our time / other time (below 1 is faster).", ""]
    lines += ["| layer, shape | mode | PyTorch ms (GB/s) | fused ms (GB/s) | composed ms | "
              "burn-nn ms | fused / PyTorch | fused / burn-nn |",
              "|---|---|---|---|---|---|---|---|"]
    summary = []
    for label, group in CASES:
        torch_case = by_label[label]
        numel = torch_case["numel"]
        for mode, key, per in MODES:
            if key not in torch_case:
                continue
            t = torch_case[key]["median_ms"]
            mine = {impl: ours.get((group, mode, impl)) for impl in IMPLS}
            if mine["fused"] is None:
                continue
            gbps = lambda ms: numel * per / (ms / 1e3) / 1e9  # noqa: E731
            fused = mine["fused"]
            summary.append((label, mode, fused / t, fused / mine["burn-nn"]))
            lines.append(
                f"| {label} {tuple(torch_case['shape'])} | {mode} | {t:.3f} ({gbps(t):.1f}) | "
                f"{fused:.3f} ({gbps(fused):.1f}) | {mine['composed']:.3f} | "
                f"{mine['burn-nn']:.3f} | {fused / t:.2f} | {fused / mine['burn-nn']:.2f} |")
    lines += ["", "BN-LeNet training, the seeds' recipe (SGD lr 0.1, batch 128, 2 threads), one "
              "epoch of 60,000 images, training loop only:", "",
              "| | images/s | ours / PyTorch |", "|---|---|---|",
              f"| PyTorch (`train_lenet.py`) | {torch_ips:,.0f} | |",
              f"| ours, main job on flex | {our_ips:,.0f} | {our_ips / torch_ips:.2f} |"]
    return "\n".join(lines), summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=os.environ.get("PYTHON", "python3"))
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"),
                        help="the folder holding baselines/bench_norm.py and train_lenet.py")
    args = parser.parse_args()
    shared = Path(args.shared)
    if not (shared / "baselines" / "bench_norm.py").is_file():
        sys.exit(f"error: {shared}/baselines/bench_norm.py not found; pass --shared DIR")
    torch_version = check_torch(args.python)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pytorch = pytorch_micro(args.python, shared, tmp)
        ours = our_micro()
        torch_ips = pytorch_training(args.python, shared, tmp)
        our_ips = our_training(tmp)
    text, summary = tables(torch_version, pytorch, ours, torch_ips, our_ips)
    doc = ROOT / "docs" / "performance.md"
    old = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    for label, mode, vs_torch, vs_burn in summary:
        print(f"{label:18s} {mode:14s} fused/PyTorch {vs_torch:6.2f}  fused/burn-nn {vs_burn:5.2f}")
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
