"""Hostile checkpoints for the PyTorch import tests (tests/hostile_checkpoints.rs).

Writes into OUT (default tests/data/hostile):
- huge_shape.pt: BN-LeNet's state_dict (tests/data/interop/bn_lenet.pt) with `net.15.bias`
  declared as a tensor of 2**30 float32 values (4 GiB) over its 10-value storage. torch.save
  writes it; torch.load refuses it. A reader that trusted the shape would allocate 4 GiB.
- huge_shape.safetensors: the same declaration in a safetensors header (shape [2**30],
  data_offsets [0, 40]).
- deflated_storage.pt: BN-LeNet's state_dict with `net.15.bias` a 10-value view of a
  2**26-value (256 MiB) zero storage, which torch.save writes whole, then the archive's
  entries recompressed with deflate: a few hundred KiB on disk that declare 256 MiB. torch.save
  never compresses its entries.
- code_execution.pt: a torch.save-style ZIP whose data.pkl, when unpickled, calls
  `os.system("touch /tmp/burn-batchnorm-pickle-ran")` (pickle's GLOBAL + REDUCE). A reader
  that only builds tensors refuses it and the marker file never appears.
- code_execution_plain.pt: the same pickle on its own (the plain-pickle layout).

Run: <python with torch> scripts/gen_hostile_checkpoints.py [OUT]
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = 2**30


class HugeTensor:
    """Pickles as `_rebuild_tensor_v2(storage, 0, (2**30,), (1,), ...)` over a small storage."""

    def __init__(self, small):
        self.storage = small.untyped_storage()
        self.dtype = small.dtype

    def __reduce__(self):
        typed = torch.storage.TypedStorage(wrap_storage=self.storage, dtype=self.dtype, _internal=True)
        return (torch._utils._rebuild_tensor_v2,
                (typed, 0, (HUGE,), (1,), False, collections.OrderedDict()))


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "hostile")
    os.makedirs(out, exist_ok=True)

    state = torch.load(os.path.join(ROOT, "tests", "data", "interop", "bn_lenet.pt"))
    hostile = collections.OrderedDict(state)
    hostile["net.15.bias"] = HugeTensor(state["net.15.bias"])
    torch.save(hostile, os.path.join(out, "huge_shape.pt"))
    try:
        torch.load(os.path.join(out, "huge_shape.pt"))
    except Exception as err:  # PyTorch refuses it too
        print(f"torch.load(huge_shape.pt): {type(err).__name__}: {str(err).splitlines()[0]}")
    else:
        raise AssertionError("torch.load accepted huge_shape.pt")

    big = os.path.join(out, "big_storage.pt")
    bomb = collections.OrderedDict(state)
    bomb["net.15.bias"] = torch.zeros(2**26)[:10]
    torch.save(bomb, big)
    with zipfile.ZipFile(big) as plain, zipfile.ZipFile(
            os.path.join(out, "deflated_storage.pt"), "w", zipfile.ZIP_DEFLATED) as packed:
        for entry in plain.infolist():
            packed.writestr(entry.filename, plain.read(entry.filename))
    os.remove(big)

    header = json.dumps({"net.15.bias": {"dtype": "F32", "shape": [HUGE], "data_offsets": [0, 40]}})
    header = header.encode() + b" " * (-len(header) % 8)
    with open(os.path.join(out, "huge_shape.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + bytes(40))

    marker = "/tmp/burn-batchnorm-pickle-ran"
    payload = pickle.dumps({"net.0.weight": RunsCode(marker)}, protocol=2)
    with zipfile.ZipFile(os.path.join(out, "code_execution.pt"), "w") as archive:
        archive.writestr("code_execution/data.pkl", payload)
        archive.writestr("code_execution/version", "3\n")
        archive.writestr("code_execution/byteorder", "little")
    with open(os.path.join(out, "code_execution_plain.pt"), "wb") as f:
        f.write(payload)
    for name in sorted(os.listdir(out)):
        print(f"wrote {os.path.join(out, name)} ({os.path.getsize(os.path.join(out, name))} bytes)")


if __name__ == "__main__":
    main()
