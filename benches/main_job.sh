#!/usr/bin/env bash
# The README's main-job table: 10 epochs of BN-LeNet on the real Fashion-MNIST on flex, the
# default flags, the plain LeNet (`--norm none`) and the reference recipe (`--momentum 0
# --schedule constant`), one after the other. Seconds per epoch include the evaluation on the
# 10,000 test images after every epoch.
#
#     bash benches/main_job.sh > docs/performance/main_job.out
#
# Prints one line per run from its report.json, and copies the default run's and the plain
# LeNet's learning curves to docs/lenet_curves.svg and docs/lenet_plain_curves.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release --features wgpu,ndarray --example lenet_fashion_mnist 2>/dev/null
echo "run	train loss	train acc	test acc	s/epoch	images/s"
run() {  # run LABEL CURVES_COPY ARGS...
    local label=$1 curves=$2
    shift 2
    local artifacts
    artifacts=$(mktemp -d)
    "$CARGO_TARGET_DIR/release/examples/lenet_fashion_mnist" --backend flex \
        --artifact-dir "$artifacts" "$@" >/dev/null 2>&1
    python3 - "$label" "$artifacts/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(sys.argv[1], f"{r['final_train_loss']:.4f}", f"{r['final_train_accuracy']:.4f}",
      f"{r['final_test_accuracy']:.4f}", f"{r['seconds_per_epoch']:.1f}",
      round(r['images_per_second']), sep="\t")
PY
    [ -z "$curves" ] || cp "$artifacts/curves.svg" "$curves"
    rm -rf "$artifacts"
}
run "BN-LeNet --norm batch (default)" docs/lenet_curves.svg
run "plain LeNet --norm none" docs/lenet_plain_curves.svg --norm none
run "BN-LeNet --momentum 0 --schedule constant" "" --momentum 0 --schedule constant
