"""Writes tests/data/interop/bn_lenet_training_checkpoint.pt: the committed BNLeNet state_dict as a
training script saves it from an nn.DataParallel model,
{"epoch": 2, "model_state_dict": {"module.net.0.weight": ...}, "optimizer_state_dict": {...}}.

Run from the repository root with torch installed:  python3 scripts/gen_wrapped_checkpoint.py
"""
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "data", "interop")

state = torch.load(os.path.join(INTEROP, "bn_lenet.pt"))
params = [v.clone().requires_grad_() for k, v in state.items() if v.is_floating_point()]
optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
sum(p.sum() for p in params).backward()
optimizer.step()  # gives the optimizer state momentum buffers, as a real checkpoint has
checkpoint = {
    "epoch": 2,
    "model_state_dict": {f"module.{k}": v for k, v in state.items()},
    "optimizer_state_dict": optimizer.state_dict(),
}
torch.save(checkpoint, os.path.join(INTEROP, "bn_lenet_training_checkpoint.pt"))
print("wrote", os.path.join(INTEROP, "bn_lenet_training_checkpoint.pt"))
