#!/usr/bin/env python3
"""Side-by-side performance report: our normalization layers and BN-LeNet training against
PyTorch on this machine, in one session. Writes the tables of docs/performance.md (between its
GENERATED markers; the hand-written analysis around them stays) and the raw JSON of every run
into docs/performance/.

    python3 benches/performance_report.py [--python VENV/bin/python] [--runs 3]
        [--training-runs 3] [--no-training]

Runs, in order:
  1. `runs` rounds of the layer benchmarks, each round PyTorch (benches/bench_norm.py) then
     ours from a plain binary (benches/norm_plain.rs: a plain `main`, the system allocator,
     burn's default features, flex). Both use the same harness and timing rule.
  2. `training-runs` rounds of BN-LeNet training, the reference recipe (SGD lr 0.1, batch 128),
     one epoch each, each round PyTorch then ours: scripts/train_lenet.py and our
     main job (`--limit-test 128`, so evaluation hardly counts, as PyTorch's timing leaves
     evaluation out). The ratio is taken within each round.

PyTorch must be importable by --python (default: $PYTHON, else python3). Without it:
    python3 -m venv .venv && .venv/bin/pip install torch numpy
    python3 benches/performance_report.py --python .venv/bin/python
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "wgpu,ndarray"  # CI's feature set and target directory: one build of burn serves both
os.environ.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "burn-batchnorm-target"))
RAW = ROOT / "docs" / "performance"
BEGIN, END = "<!-- BEGIN GENERATED: benches/performance_report.py -->", "<!-- END GENERATED -->"
# (mode, bytes moved per element at least): forward reads x and writes y; forward+backward
# also reads x and dy and writes dx (bench_norm.py's convention).
MODES = [("train_fwd", 8), ("train_fwd_bwd", 20), ("eval_fwd", 8)]


def check_torch(python):
    probe = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"error: {python} cannot import torch and numpy. Create a virtual environment:\n"
                 "  python3 -m venv .venv && .venv/bin/pip install torch numpy\n"
                 "and run: python3 benches/performance_report.py --python .venv/bin/python")
    return probe.stdout.strip()


def pytorch_layers(python, out):
    subprocess.run([python, str(ROOT / "benches" / "bench_norm.py"), "--json", str(out)],
                   check=True)
    return json.loads(out.read_text())


def our_layers(out):
    subprocess.run(["cargo", "bench", "--features", FEATURES, "--bench", "norm_plain", "--",
                    "--json", str(out)], cwd=ROOT, check=True)
    return json.loads(out.read_text())


def pytorch_training(python, out):
    subprocess.run([python, str(ROOT / "scripts" / "train_lenet.py"), "--bn", "--epochs", "1",
                    "--out", str(out)], check=True)
    return json.loads(out.read_text())["epochs"][0]["img_per_s"]


def our_training(artifacts):
    subprocess.run(["cargo", "run", "--release", "--features", FEATURES, "--example",
                    "lenet_fashion_mnist", "--", "--backend", "flex", "--momentum", "0",
                    "--schedule", "constant", "--epochs", "1", "--limit-test", "128",
                    "--artifact-dir", str(artifacts)], cwd=ROOT, check=True)
    return json.loads((artifacts / "report.json").read_text())["images_per_second"]


def spread(values, fmt):
    """`median (min–max)` of the runs."""
    values = sorted(values)
    mid = statistics.median(values)
    if len(values) == 1:
        return fmt.format(mid)
    return f"{fmt.format(mid)} ({fmt.format(values[0])}–{fmt.format(values[-1])})"


def layer_table(torch_runs, our_runs):
    lines = ["| layer, shape | mode | PyTorch ms | ours ms | ours / PyTorch | PyTorch GB/s | "
             "ours GB/s | page faults per step, PyTorch / ours |",
             "|---|---|---|---|---|---|---|---|"]
    summary = []
    labels = [b["label"] for b in torch_runs[0]["benches"]]
    for label in labels:
        pick = lambda runs: [next(b for b in r["benches"] if b["label"] == label)  # noqa: E731
                             for r in runs]
        torch_cases, our_cases = pick(torch_runs), pick(our_runs)
        numel = torch_cases[0]["numel"]
        for mode, per in MODES:
            t = [c[mode]["median_ms"] for c in torch_cases]
            o = [c[mode]["median_ms"] for c in our_cases]
            ratios = [oi / ti for oi, ti in zip(o, t)]
            gbps = lambda ms: numel * per / (ms / 1e3) / 1e9  # noqa: E731
            faults = (statistics.median(c[mode]["faults_per_rep"] for c in torch_cases),
                      statistics.median(c[mode]["faults_per_rep"] for c in our_cases))
            summary.append((label, mode, statistics.median(ratios), max(ratios)))
            lines.append(
                f"| {label} | {mode} | {spread(t, '{:.3f}')} | {spread(o, '{:.3f}')} | "
                f"{spread(ratios, '{:.2f}')} | {gbps(statistics.median(t)):.1f} | "
                f"{gbps(statistics.median(o)):.1f} | {faults[0]:.0f} / {faults[1]:.0f} |")
    return lines, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=os.environ.get("PYTHON", "python3"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--training-runs", type=int, default=3)
    parser.add_argument("--no-training", action="store_true",
                        help="skip the BN-LeNet training comparison (keeps its old table)")
    args = parser.parse_args()
    torch_version = check_torch(args.python)
    RAW.mkdir(parents=True, exist_ok=True)
    torch_runs, our_runs = [], []
    for run in range(1, args.runs + 1):
        torch_runs.append(pytorch_layers(args.python, RAW / f"layers-pytorch-{run}.json"))
        our_runs.append(our_layers(RAW / f"layers-ours-{run}.json"))
    lines = [f"Measured in one session by `benches/performance_report.py`: PyTorch "
             f"{torch_version} ({torch_runs[0]['threads']} threads, {torch_runs[0]['cpu']}) "
             "and ours on flex from a plain binary (`benches/norm_plain.rs`: system "
             "allocator, burn's default features). Times are the median over "
             f"{args.runs} runs (min–max in brackets) of each run's best trial median, in ms; "
             "the ratio is taken within each run. GB/s = minimum bytes / median time. "
             "Raw output: `docs/performance/layers-*.json`.", ""]
    table, summary = layer_table(torch_runs, our_runs)
    lines += table
    if not args.no_training:
        torch_ips, our_ips = [], []
        for _ in range(args.training_runs):
            with tempfile.TemporaryDirectory() as tmp:
                torch_ips.append(pytorch_training(args.python, Path(tmp) / "lenet.json"))
                our_ips.append(our_training(Path(tmp) / "lenet"))
        (RAW / "training.json").write_text(json.dumps(
            {"pytorch_images_per_second": torch_ips, "ours_images_per_second": our_ips}, indent=1))
    training = json.loads((RAW / "training.json").read_text()) if (RAW / "training.json").exists() \
        else None
    if training:
        torch_ips, our_ips = training["pytorch_images_per_second"], training["ours_images_per_second"]
        ratios = [o / t for o, t in zip(our_ips, torch_ips)]
        lines += ["", "BN-LeNet training, the reference recipe (SGD lr 0.1, batch 128, 2 threads), one "
                  f"epoch of 60,000 images, training loop only, {len(ratios)} rounds of PyTorch "
                  "then ours, median (min–max); the ratio is taken within each round "
                  "(`docs/performance/training.json`):",
                  "", "| | images/s | ours / PyTorch |", "|---|---|---|",
                  f"| PyTorch (`train_lenet.py`) | {spread(torch_ips, '{:,.0f}')} | |",
                  f"| ours, main job on flex | {spread(our_ips, '{:,.0f}')} | "
                  f"{spread(ratios, '{:.2f}')} |"]
    text = "\n".join(lines)
    doc = ROOT / "docs" / "performance.md"
    old = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    for label, mode, ratio, worst in summary:
        print(f"{label:44s} {mode:14s} ours/PyTorch {ratio:5.2f} (worst run {worst:5.2f})")
    print(f"wrote {doc} and {RAW}/")


if __name__ == "__main__":
    main()
