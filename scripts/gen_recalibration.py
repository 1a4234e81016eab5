"""PyTorch's BN recalibration (`torch.optim.swa_utils.update_bn`) of the committed interop
checkpoints, as expected values for `bn_layers::recalibrate`.

For each model of scripts/gen_interop.py (BNLeNet, MLPWithBN), loads tests/data/interop/<model>.pt,
runs `update_bn` over the first N training images of Fashion-MNIST in their file order, in
batches of 128 (a DataLoader without shuffling; the last batch is short when 128 does not divide
N), and writes tests/data/interop/recalibrated.json: every BatchNorm's running_mean,
running_var and num_batches_tracked under its state-dict prefix, and the eval-mode accuracy on
the 10,000 test images before and after.

update_bn resets every BatchNorm's statistics (mean 0, variance 1, count 0), sets momentum to
None (a cumulative average), runs training-mode forwards without gradients and restores the
momenta: each running mean ends as the average of the batch means, each running variance as the
average of the unbiased batch variances.

Run: <python with torch, numpy> scripts/gen_recalibration.py [N] [OUT]
"""
import json
import os
import sys

import torch
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_interop import BNLeNet, MLPWithBN, load  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BATCH = 128


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "interop")
    xtr, _ = load("train")
    xte, yte = load("test")
    images = xtr[:n]
    result = {
        "torch_version": torch.__version__,
        "procedure": f"torch.optim.swa_utils.update_bn over the first {n} training images in "
        f"file order, batches of {BATCH} (DataLoader, shuffle=False); images x/255 then (x-0.5)/0.5",
        "images": n,
        "batch_size": BATCH,
        "models": {},
    }
    for name, cls in [("bn_lenet", BNLeNet), ("mlp_with_bn", MLPWithBN)]:
        model = cls()
        model.load_state_dict(torch.load(os.path.join(out, f"{name}.pt")))
        before = accuracy(model, xte, yte)
        # update_bn passes each batch's first element to the model: a dataset of images alone.
        update_bn(DataLoader(TensorDataset(images), batch_size=BATCH, shuffle=False), model)
        after = accuracy(model, xte, yte)
        layers = {}
        for prefix, module in model.named_modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                layers[prefix] = {
                    "running_mean": module.running_mean.tolist(),
                    "running_var": module.running_var.tolist(),
                    "num_batches_tracked": int(module.num_batches_tracked),
                    "momentum": module.momentum,
                }
        result["models"][name] = {
            "eval_test_accuracy_before": before,
            "eval_test_accuracy_after": after,
            "batchnorms": layers,
        }
        print(f"{name}: test accuracy {before:.4f} before, {after:.4f} after recalibration "
              f"over {n} images ({len(layers)} BatchNorms)")
    with open(os.path.join(out, "recalibrated.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
