#!/usr/bin/env bash
# The committed PyTorch checkpoints imported as f32, bf16 and f16 models (`import_pytorch
# --dtype`), evaluated on the 10,000 Fashion-MNIST test images as imported and after
# recalibrating over the first 1,000 training images: the README's half-precision table.
#
#     bash benches/half_import.sh > docs/experiments/half_import.out
#
# Prints one line per model and dtype: test accuracy, recalibrated accuracy, and how many
# float values the model holds in each dtype (the BatchNorms' running statistics stay f32).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
cargo build --release --features wgpu,ndarray --example import_pytorch 2>/dev/null
import="$CARGO_TARGET_DIR/release/examples/import_pytorch"
out=$(mktemp -d)
echo "model dtype accuracy recalibrated_accuracy values_by_dtype (flex, Fashion-MNIST test set)"
for model in bn_lenet mlp_with_bn; do
    for dtype in f32 bf16 f16; do
        weights="tests/data/interop/$model.safetensors"
        "$import" --backend flex --model "$model" --weights "$weights" --dtype "$dtype" \
            --out "$out/plain.json" >/dev/null
        "$import" --backend flex --model "$model" --weights "$weights" --dtype "$dtype" \
            --recalibrate 1000 --out "$out/recalibrated.json" >/dev/null
        python3 - "$model" "$dtype" "$out/plain.json" "$out/recalibrated.json" <<'PY'
import json, sys
model, dtype, plain, recalibrated = sys.argv[1:]
plain, recalibrated = json.load(open(plain)), json.load(open(recalibrated))
print(model, dtype, f"{plain['eval_test_accuracy']:.4f}",
      f"{recalibrated['eval_test_accuracy']:.4f}", json.dumps(plain["values_by_dtype"]))
PY
    done
done
rm -rf "$out"
