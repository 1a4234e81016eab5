#!/usr/bin/env bash
# The main job's speed on each backend compiled into CI's build: one epoch of BN-LeNet on
# the real Fashion-MNIST, the default recipe (`--limit-test 128`, so evaluation hardly
# counts), on flex, ndarray and wgpu (lavapipe where there is no GPU), one after the other.
#
#     bash benches/backends.sh > docs/performance/backends.out
#
# Prints each run's images/s from its report.json. ndarray with Burn's `openblas` feature
# is not here: that feature set rebuilds Burn (10-20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release --features wgpu,ndarray --example lenet_fashion_mnist 2>/dev/null
echo "backend images/s (one epoch of 60,000 images, batch 128, 2-core CPU)"
for backend in flex ndarray wgpu; do
    artifacts=$(mktemp -d)
    "$CARGO_TARGET_DIR/release/examples/lenet_fashion_mnist" --backend "$backend" --epochs 1 \
        --limit-test 128 --artifact-dir "$artifacts" >/dev/null 2>&1
    python3 -c "import json, sys; print(sys.argv[1], round(json.load(open(sys.argv[2]))['images_per_second']))" \
        "$backend" "$artifacts/report.json"
    rm -rf "$artifacts"
done
