#!/usr/bin/env bash
# What burn-train's Learner costs per step: one epoch of the main job (the reference recipe,
# `--limit-test 128` so evaluation hardly counts) against the same epoch in a bare loop
# (benches/training_loop.rs: same model, data order, loss, optimizer and schedule), the two
# alternated twice in one session.
#
#     bash benches/learner_overhead.sh > docs/performance/learner_overhead.out
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
cargo build --release --features wgpu,ndarray --example lenet_fashion_mnist 2>/dev/null
bare=$(cargo bench --features wgpu,ndarray --bench training_loop --no-run 2>&1 \
    | sed -n 's/.*Executable benches\/training_loop.rs (\(.*\))/\1/p')
for round in 1 2; do
    artifacts=$(mktemp -d)
    "$CARGO_TARGET_DIR/release/examples/lenet_fashion_mnist" --backend flex --momentum 0 \
        --schedule constant --epochs 1 --limit-test 128 --artifact-dir "$artifacts" >/dev/null 2>&1
    python3 -c "import json, sys; print('round', sys.argv[1], 'Learner (main job):', round(json.load(open(sys.argv[2]))['images_per_second']), 'images/s')" \
        "$round" "$artifacts/report.json"
    rm -rf "$artifacts"
    echo "round $round $("$bare")"
done
