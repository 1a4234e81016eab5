"""PyTorch checkpoints of D2L's BN-LeNet and an MLP with BatchNorm, trained on real Fashion-MNIST, with expected outputs.

Writes into OUT (default tests/data/interop): for each model a state_dict as .pt (torch.save) and
.safetensors, and expected.json with eval-mode logits for the first 16 test images and the
eval-mode accuracy on all 10,000 test images. The models are the reference PyTorch classes
(the same definitions as scripts/train_lenet.py's):
BNLeNet (D2L's BN-LeNet, `self.net = nn.Sequential(...)`) and MLPWithBN (the classic
784-256-256-10 MLP with BatchNorm, fc1/bn1/fc2/bn2/fc3).
Run: <python with torch, numpy, safetensors> scripts/gen_interop.py [OUT] [SEED] [EPOCHS]
"""
import gzip, json, os, sys
import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    p = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA, f"{p}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = read_idx(os.path.join(DATA, f"{p}-labels-idx1-ubyte.gz")).astype(np.int64)
    x = (torch.from_numpy(x) - 0.5) / 0.5
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y)


class BNLeNet(nn.Module):  # D2L's BN-LeNet, built-in BN variant
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2, 2),
            nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(2, 2),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.net(x)


class MLPWithBN(nn.Module):  # the classic 784-256-256-10 MLP with BatchNorm
    def __init__(self, input_size=784, hidden_size=256, output_size=10):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, output_size)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.flatten(1)
        x = self.relu(self.bn1(self.fc1(x)))
        x = self.relu(self.bn2(self.fc2(x)))
        return self.fc3(x)


def train(model, xtr, ytr, epochs, seed, lr):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            lossf(model(xtr[idx]), ytr[idx]).backward()
            opt.step()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "interop")
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    xtr, ytr = load("train")
    xte, yte = load("test")
    expected = {"data": "Fashion-MNIST test set, x/255 then (x-0.5)/0.5, NCHW (N,1,28,28); MLP flattens to 784",
                "torch_version": torch.__version__, "seed": seed, "epochs": epochs, "models": {}}
    for name, model, lr in [("bn_lenet", BNLeNet(), 0.1), ("mlp_with_bn", MLPWithBN(), 0.1)]:
        train(model, xtr, ytr, epochs, seed, lr)
        model.eval()
        with torch.no_grad():
            logits16 = model(xte[:16])
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        torch.save(sd, os.path.join(out, f"{name}.pt"))
        save_file(sd, os.path.join(out, f"{name}.safetensors"))
        expected["models"][name] = {
            "class": type(model).__name__,
            "state_dict_keys": {k: list(v.shape) for k, v in sd.items()},
            "eval_logits_first16": logits16.tolist(),
            "eval_predictions_first16": logits16.argmax(1).tolist(),
            "eval_test_accuracy": acc,
        }
        print(f"{name}: eval test accuracy {acc:.4f}")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
