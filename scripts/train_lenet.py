"""D2L BatchNorm-LeNet (and plain LeNet) on the real Fashion-MNIST, CPU, 2 threads.

Run:
  venv/bin/python scripts/train_lenet.py --bn --epochs 10 --out lenet_bn.json
  venv/bin/python scripts/train_lenet.py --no-bn --epochs 3 --out lenet_nobn.json
  venv/bin/python scripts/train_lenet.py --count-params > docs/pytorch/params.out
Data: /usr/share/datasets/fashion-mnist/*.gz (IDX), x/255 then (x-0.5)/0.5.
The reference recipe: SGD(lr=0.1, no momentum, no weight decay), batch 128, reshuffled each epoch, CrossEntropyLoss.
Train loss/acc are accumulated over the epoch from the train-mode forward passes
(sample-weighted); test accuracy uses model.eval() (running stats) under no_grad.
Epoch wall time counts the training loop only (eval timed separately).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dtype_code = (magic >> 8) & 0xFF
    assert dtype_code == 0x08, f"expected ubyte IDX, got {dtype_code:#x}"
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0)
    x = ((x - 0.5) / 0.5).unsqueeze(1).contiguous()      # (N,1,28,28) in [-1,1]
    return x, torch.from_numpy(y.astype(np.int64))


def lenet(bn=True):
    layers = [nn.Conv2d(1, 6, kernel_size=5)]
    if bn:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(6, 16, kernel_size=5)]
    if bn:
        layers.append(nn.BatchNorm2d(16))
    layers += [nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(), nn.Linear(16 * 4 * 4, 120)]
    if bn:
        layers.append(nn.BatchNorm1d(120))
    layers += [nn.Sigmoid(), nn.Linear(120, 84)]
    if bn:
        layers.append(nn.BatchNorm1d(84))
    layers += [nn.Sigmoid(), nn.Linear(84, 10)]
    return nn.Sequential(*layers)


def mlp_with_bn():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 10))


def count(model):
    params = sum(p.numel() for p in model.parameters())
    bufs = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    nbt = sum(1 for n, _ in model.named_buffers() if n.endswith("num_batches_tracked"))
    return params, bufs, nbt


def evaluate(model, x, y, bs=1000):
    model.eval()
    correct = 0
    loss_sum = 0.0
    lossf = nn.CrossEntropyLoss(reduction="sum")
    with torch.no_grad():
        for i in range(0, x.shape[0], bs):
            out = model(x[i:i + bs])
            loss_sum += lossf(out, y[i:i + bs]).item()
            correct += (out.argmax(1) == y[i:i + bs]).sum().item()
    model.train()
    return correct / x.shape[0], loss_sum / x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bn", dest="bn", action="store_true", default=True)
    ap.add_argument("--no-bn", dest="bn", action="store_false")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-budget", type=float, default=1e9, help="seconds; stop after the epoch that exceeds it")
    ap.add_argument("--out", default=None)
    ap.add_argument("--limit-batches", type=int, default=0, help="smoke test: stop each epoch after this many batches")
    ap.add_argument("--count-params", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    if a.count_params:
        for name, m in [("BN-LeNet", lenet(True)), ("LeNet (no BN)", lenet(False)), ("MLPWithBN 784-256-256-10", mlp_with_bn())]:
            p, b, n = count(m)
            print(f"{name:28s} trainable params {p:8,d}  running-stat floats {b:5,d}  num_batches_tracked buffers {n}")
            for pn, pp in m.named_parameters():
                print(f"      {pn:14s} {tuple(pp.shape)}")
        return

    torch.manual_seed(a.seed)
    xtr, ytr = load("train")
    xte, yte = load("test")
    print(f"train {tuple(xtr.shape)} test {tuple(xte.shape)} x range [{xtr.min():.3f},{xtr.max():.3f}] mean {xtr.mean():.4f}")
    model = lenet(a.bn)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(a.seed)
    n = xtr.shape[0]
    log = {"bn": a.bn, "lr": a.lr, "batch": a.batch, "threads": a.threads, "torch": torch.__version__,
           "params": count(model)[0], "loadavg_start": os.getloadavg(), "epochs": []}
    acc0, l0 = evaluate(model, xte, yte)
    print(f"init test acc {acc0:.4f} loss {l0:.4f}")
    t_total = time.perf_counter()
    for ep in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        correct = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        seen = 0
        for bi, i in enumerate(range(0, n, a.batch)):
            if a.limit_batches and bi >= a.limit_batches:
                break
            idx = perm[i:i + a.batch]
            xb, yb = xtr[idx], ytr[idx]
            out = model(xb)
            loss = lossf(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * yb.shape[0]
            correct += (out.argmax(1) == yb).sum().item()
            seen += yb.shape[0]
        t_train = time.perf_counter() - t0
        cpu_train = time.process_time() - c0
        t1 = time.perf_counter()
        test_acc, test_loss = evaluate(model, xte, yte)
        t_eval = time.perf_counter() - t1
        rec = {"epoch": ep, "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_acc": test_acc,
               "test_loss": test_loss, "train_time_s": t_train, "img_per_s": seen / t_train,
               "train_cpu_s": cpu_train, "images": seen,
               "eval_time_s": t_eval, "loadavg": os.getloadavg()}
        log["epochs"].append(rec)
        print(f"epoch {ep:2d} loss {rec['train_loss']:.4f} train_acc {rec['train_acc']:.4f} test_acc {test_acc:.4f} "
              f"| train {t_train:6.1f}s (cpu {cpu_train:6.1f}s) {rec['img_per_s']:7.0f} img/s | eval {t_eval:4.1f}s | load {rec['loadavg'][0]:.2f}",
              flush=True)
        if time.perf_counter() - t_total > a.time_budget:
            print("time budget reached, stopping")
            break
    log["total_time_s"] = time.perf_counter() - t_total
    if a.bn:
        bn0 = model[1]
        log["first_bn_running_mean"] = bn0.running_mean.tolist()
        log["first_bn_running_var"] = bn0.running_var.tolist()
        log["first_bn_num_batches_tracked"] = int(bn0.num_batches_tracked)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(log, f, indent=1)


if __name__ == "__main__":
    main()
