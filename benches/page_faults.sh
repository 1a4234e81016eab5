#!/usr/bin/env bash
# Page faults and times of a BatchNorm2d(6) training step on (128, 6, 24, 24), from the plain
# binary (benches/norm_plain.rs, system allocator), four ways: the composed path (one fresh
# buffer per elementwise op) and the fused path (the kernels), each with glibc's malloc as it
# comes and with its mmap threshold raised (GLIBC_TUNABLES), which is what hides the faults;
# then the same step under criterion.
#
#     bash benches/page_faults.sh > docs/performance/page_faults.out
#
# Each run prints the binary's own line (median step times, minor faults per fwd+bwd step
# read from /proc/self/stat) and perf stat's count for the whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
binary=$(cargo bench --features wgpu,ndarray --bench norm_plain --no-run 2>&1 \
    | sed -n 's/.*Executable benches\/norm_plain.rs (\(.*\))/\1/p')
tuned="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
for path in composed fused; do
    for tunables in "" "$tuned"; do
        echo "== path $path, GLIBC_TUNABLES=${tunables:-(unset)}"
        GLIBC_TUNABLES="$tunables" perf stat -e page-faults -x, -o /dev/stdout \
            "$binary" --only "BatchNorm2d(6)" --path "$path" | grep -v '^$\|^#'
    done
done
# The same step under criterion (benches/norm.rs): its time per iteration, and perf stat's
# count for the whole process (warm-up and about 500 iterations per path).
criterion=$(cargo bench --features wgpu,ndarray --bench norm --no-run 2>&1 \
    | sed -n 's/.*Executable benches\/norm.rs (\(.*\))/\1/p')
for path in composed fused; do
    echo "== criterion, path $path"
    perf stat -e page-faults -x, -o /dev/stdout "$criterion" \
        --bench "BatchNorm2d\(6\).*train_fwd_bwd/$path" 2>&1 | grep -E 'time:|iterations|page-faults'
done
