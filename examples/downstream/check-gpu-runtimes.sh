#!/usr/bin/env bash
# `cargo check` of this crate with burn's CUDA and ROCm runtimes and bn-layers' `cube`
# feature, on a machine with neither SDK nor a GPU. Writes check-gpu-runtimes.txt.
#
# cubecl-cuda and cubecl-hip build cubecl-llvm, whose build script downloads an LLVM bundle
# from GitHub (tracel-llvm-bundler). Without that access the plain check stops there; with
# DOCS_RS set, the build scripts of tracel-llvm-bundler and cubecl-llvm skip the native LLVM
# set-up (as they do on docs.rs), and the check then type-checks every crate, bn-layers'
# CubeCL kernels for the CUDA and ROCm runtimes included. Nothing links or runs.
set -uo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-batchnorm-target}"
{
    echo "# $(date -u +%FT%TZ) on $(uname -m), $(cargo --version)"
    echo "## cargo check --release --locked --features cuda,rocm"
    cargo check --release --locked --features cuda,rocm 2>&1 | grep -E '^(error|  called|warning: build failed)|Finished' | head -n 5
    echo "exit status: ${PIPESTATUS[0]}"
    echo "## DOCS_RS=1 cargo check --release --locked --features cuda,rocm"
    DOCS_RS=1 cargo check --release --locked --features cuda,rocm 2>&1 | grep -E '^error|Finished' | head -n 5
    echo "exit status: ${PIPESTATUS[0]}"
} | tee check-gpu-runtimes.txt
