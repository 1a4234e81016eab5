"""Checks in PyTorch that our safetensors export loads into the reference PyTorch classes.

For BNLeNet and MLPWithBN: runs `examples/import_pytorch.rs` on the checkpoint in
tests/data/interop/ with `--export`, loads the exported file with
`model.load_state_dict(safetensors.torch.load_file(...))` (strict), and compares the eval-mode
logits of the first 16 Fashion-MNIST test images with tests/data/interop/expected.json.

Run from the repository root:  python3 scripts/check_pytorch_export.py
Needs torch, numpy and safetensors (`python3 -m venv venv && venv/bin/pip install torch numpy
safetensors`), Fashion-MNIST (`apt-get install dataset-fashion-mnist`) and cargo.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file
except ImportError as err:
    sys.exit(f"missing {err.name}: pip install torch numpy safetensors (into a venv) and run again")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "data", "interop")
DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


class BNLeNet(nn.Module):  # D2L's BN-LeNet
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2, 2),
            nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(2, 2),
            nn.Flatten(), nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10))

    def forward(self, x):
        return self.net(x)


class MLPWithBN(nn.Module):  # the classic 784-256-256-10 MLP with BatchNorm
    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 256), nn.BatchNorm1d(256)
        self.fc2, self.bn2 = nn.Linear(256, 256), nn.BatchNorm1d(256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.fc1(x.flatten(1))))
        return self.fc3(torch.relu(self.bn2(self.fc2(x))))


def first_test_images(n):
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    x = np.frombuffer(raw, dtype=np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    return (torch.from_numpy(x.astype(np.float32) / 255.0) - 0.5) / 0.5


def main():
    expected = json.load(open(os.path.join(INTEROP, "expected.json")))["models"]
    images = first_test_images(16)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in [("bn_lenet", BNLeNet), ("mlp_with_bn", MLPWithBN)]:
            exported = os.path.join(tmp, f"{name}.safetensors")
            subprocess.run(
                ["cargo", "run", "--release", "--quiet", "--example", "import_pytorch", "--",
                 "--model", name, "--weights", os.path.join(INTEROP, f"{name}.pt"),
                 "--export", exported],
                cwd=ROOT, check=True)
            model = cls()
            model.load_state_dict(load_file(exported))  # strict: every key, every shape
            model.eval()
            with torch.no_grad():
                logits = model(images)
            diff = (logits - torch.tensor(expected[name]["eval_logits_first16"])).abs().max().item()
            nbt = model.state_dict()[next(k for k in model.state_dict() if k.endswith("num_batches_tracked"))]
            print(f"{name}: exported file loads into {cls.__name__} (strict); "
                  f"max |logit - expected| = {diff:.2e}; num_batches_tracked = {int(nbt)}")
            worst = max(worst, diff)
    if worst > 1e-5:
        sys.exit(f"FAILED: logits differ by {worst:.2e}")
    print("OK")


if __name__ == "__main__":
    main()
