#!/usr/bin/env python3
"""Where BN-LeNet's training time goes, ours against PyTorch's, in one session.

    python3 benches/profile_training.py [--python VENV/bin/python] 

1. Ours: one epoch of the main job on flex, the reference recipe (SGD lr 0.1, batch 128,
   `--limit-test 128` so evaluation hardly counts), under `perf record` with DWARF call
   graphs. Each sample is put in the op class of the frames on its stack (a convolution's
   GEMM counts as convolution, a linear layer's as linear; see CLASSES).
2. PyTorch: 100 training steps of scripts/train_lenet.py's model under
   torch.profiler, each aten op's self CPU time put in the same classes.

Writes docs/performance/profile-ours.txt (perf's samples per class), profile-pytorch.txt
(torch.profiler's table), profile.json (both breakdowns) and profile.out (the Markdown table
that docs/performance.md shows, also printed). Needs `perf` (Debian's linux-perf) and PyTorch in --python.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "wgpu,ndarray"  # CI's feature set and target directory: one build of burn
os.environ.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "burn-batchnorm-target"))
RAW = ROOT / "docs" / "performance"
STEPS = 100  # PyTorch steps profiled, after 20 warm-up steps

# Op classes, most specific first: a sample goes to the first class any of its frames
# matches (ours: Rust symbol names; PyTorch: aten op names).
CLASSES = [
    ("convolution", r"conv", r"convolution"),
    ("average pool", r"avg_pool", r"avg_pool"),
    ("sigmoid", r"sigmoid", r"sigmoid"),
    ("batch norm", r"bn_layers|batch_norm", r"batch_norm"),
    ("loss (log-softmax, NLL)", r"cross_entropy|log_softmax|CrossEntropy", r"log_softmax|nll_loss"),
    ("linear (matmul)", r"matmul|gemm|Linear", r"aten::mm$|addmm|aten::t$|linear"),
    ("optimizer", r"burn_optim|Sgd|optim::", r"Optimizer|add_|zero_grad|mul_"),
    ("data loading", r"burn_dataset|bn_train::data|DataLoader|Batcher", r"slice|copy_|index"),
    ("thread pool waiting", r"wait_until|sched_yield|Sleep::sleep|futex", None),
    ("burn-train's per-step work", r"burn_train", None),
]


def classify(names, column):
    for label, ours, torch in CLASSES:
        pattern = (ours, torch)[column]
        if pattern and any(re.search(pattern, name) for name in names):
            return label
    return "other"


def our_profile(data):
    """Samples per class of one profiled epoch of the main job: `(main thread, all threads)`,
    and the epoch's images/s."""
    artifacts = Path(tempfile.mkdtemp())
    subprocess.run(["cargo", "build", "--release", "--features", FEATURES, "--example",
                    "lenet_fashion_mnist"], cwd=ROOT, check=True)
    binary = Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "examples" / "lenet_fashion_mnist"
    subprocess.run(["perf", "record", "-q", "-F", "99", "--call-graph", "dwarf,16384", "-o",
                    str(data), str(binary), "--backend", "flex", "--momentum", "0",
                    "--schedule", "constant", "--epochs", "1", "--limit-test", "128",
                    "--artifact-dir", str(artifacts)], cwd=ROOT, check=True)
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,pid,tid,ip,sym"],
                            capture_output=True, text=True, check=True).stdout
    main, every = Counter(), Counter()
    for sample in script.split("\n\n"):
        lines = [line.strip() for line in sample.strip().splitlines()]
        if not lines:
            continue
        # The first line is `comm pid/tid`; each further line is `address symbol`.
        pid, tid = lines[0].split()[-1].split("/")
        frames = [line.split(None, 1)[-1] for line in lines[1:]]
        label = classify(frames, 0)
        every[label] += 1
        if pid == tid:
            main[label] += 1
    report = json.loads((artifacts / "report.json").read_text())
    return main, every, report["images_per_second"]


def pytorch_profile(python, table):
    """Self CPU milliseconds per class of STEPS PyTorch training steps."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT / "scripts")!r})
import torch, torch.nn as nn
from torch.profiler import profile, ProfilerActivity
from train_lenet import lenet, load
torch.set_num_threads(2); torch.manual_seed(0)
x, y = load("train")
model = lenet(True)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
def step(i):
    xb, yb = x[i * 128:(i + 1) * 128], y[i * 128:(i + 1) * 128]
    loss = loss_fn(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for i in range(20):
    step(i)
started = time.perf_counter()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(20, 20 + {STEPS}):
        step(i)
wall = time.perf_counter() - started
events = [(e.key, e.self_cpu_time_total / 1000) for e in prof.key_averages()]
with open({str(table)!r}, "w") as f:
    f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(json.dumps({{"events": events, "wall_ms": wall * 1000, "torch": torch.__version__}}))
"""
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    per_class = Counter()
    for name, ms in measured["events"]:
        per_class[classify([name], 1)] += ms
    return per_class, measured


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=os.environ.get("PYTHON", "python3"))
    args = ap.parse_args()
    RAW.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        main_thread, every_thread, our_ips = our_profile(Path(tmp) / "perf.data")
    torch_ms, torch_raw = pytorch_profile(args.python, RAW / "profile-pytorch.txt")

    # perf samples a thread only while it runs: a class's samples times the sampling period
    # are its CPU time, over both threads (flex's rayon pool has one thread per core).
    sample_ms = 1000 / 99
    steps = 60_000 / 128
    cpu_total = sum(every_thread.values())
    torch_total = sum(torch_ms.values())
    labels = [label for label, _, _ in CLASSES] + ["other"]
    rows = []
    for label in labels:
        rows.append({
            "class": label,
            "ours_cpu_ms_per_step": every_thread[label] * sample_ms / steps,
            "ours_share": every_thread[label] / cpu_total,
            "ours_main_thread_share": main_thread[label] / max(every_thread[label], 1),
            "pytorch_ms_per_step": torch_ms[label] / STEPS,
            "pytorch_share": torch_ms[label] / torch_total,
        })
    (RAW / "profile-ours.txt").write_text(
        "class\tmain-thread samples\tall samples (perf record -F 99, one epoch)\n"
        + "".join(f"{label}\t{main_thread[label]}\t{every_thread[label]}\n" for label in labels)
        + f"total\t{sum(main_thread.values())}\t{cpu_total}\n")
    (RAW / "profile.json").write_text(json.dumps({
        "ours_images_per_second": our_ips,
        "pytorch_wall_ms_per_step": torch_raw["wall_ms"] / STEPS,
        "pytorch_version": torch_raw["torch"],
        "rows": rows,
    }, indent=2) + "\n")

    lines = [
        "| op class | ours: CPU ms per step (both threads) | ours: share | ours: part on the "
        "main thread | PyTorch: self CPU ms per step | PyTorch: share |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['class']} | {row['ours_cpu_ms_per_step']:.2f} | {row['ours_share']:.1%} "
            f"| {row['ours_main_thread_share']:.0%} | {row['pytorch_ms_per_step']:.2f} "
            f"| {row['pytorch_share']:.1%} |")
    lines.append(
        f"\nours: {our_ips:,.0f} images/s, {60_000 / our_ips * 1000 / steps:.2f} ms of wall "
        f"time and {cpu_total * sample_ms / steps:.2f} ms of CPU time a step of 128; PyTorch "
        f"{torch_raw['torch']}: {torch_raw['wall_ms'] / STEPS:.2f} ms of wall time a step "
        "under the profiler")
    table = "\n".join(lines) + "\n"
    (RAW / "profile.out").write_text(table)
    print(table, end="")


if __name__ == "__main__":
    main()
