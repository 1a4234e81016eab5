"""make_moons MLP with / without BatchNorm1d.

Run: venv/bin/python scripts/moons.py > docs/pytorch/moons.out  (also writes moons.json here)
Model: Linear(2,64) [BatchNorm1d(64)] ReLU Linear(64,2); SGD(lr), CrossEntropyLoss,
10 epochs, batch 32, DataLoader(shuffle=True), make_moons(1000, noise=0.1, random_state=42),
torch.manual_seed(42) before building the model (both variants get identical Linear init:
BatchNorm consumes no RNG). Epoch loss = mean of the 32 per-batch losses (last batch has 8 samples).
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import make_moons
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(2)


def run(use_bn, lr, epochs=10, seed=42):
    X, y = make_moons(n_samples=1000, noise=0.1, random_state=42)
    X = torch.tensor(X, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 64)]
    if use_bn:
        layers.append(nn.BatchNorm1d(64))
    layers += [nn.ReLU(), nn.Linear(64, 2)]
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = nn.CrossEntropyLoss()
    dl = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    losses, losses_w = [], []
    for _ in range(epochs):
        model.train()
        tot, tot_w, nb = 0.0, 0.0, 0
        for xb, yb in dl:
            out = model(xb)
            loss = lossf(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item(); tot_w += loss.item() * len(yb); nb += 1
        losses.append(tot / nb)
        losses_w.append(tot_w / len(X))
    model.eval()
    with torch.no_grad():
        acc = (model(X).argmax(1) == y).float().mean().item()
    return {"bn": use_bn, "lr": lr, "epoch_loss_mean_of_batches": losses,
            "epoch_loss_sample_weighted": losses_w, "final_train_acc_eval_mode": acc,
            "batches_per_epoch": nb}


def main():
    X, _ = make_moons(n_samples=1000, noise=0.1, random_state=42)
    print("make_moons first 3 points:", np.round(X[:3], 6).tolist())
    res = []
    for lr in [1e-4, 0.1]:
        for bn in [False, True]:
            r = run(bn, lr)
            res.append(r)
            print(f"lr={lr:<6} BN={str(bn):5s} acc(eval)={r['final_train_acc_eval_mode']:.3f} epoch losses: "
                  + " ".join(f"{v:.4f}" for v in r["epoch_loss_mean_of_batches"]))
    with open("moons.json", "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
