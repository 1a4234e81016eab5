//! Every case of `tests/data/pytorch_golden.json` on flex in float64, through both compute
//! paths, with the runner of the `conformance` example.
//!
//! The file is written by `scripts/gen_golden.py` from PyTorch 2.15 in float64 (outputs,
//! gradients and running statistics) and re-derived in numpy by `verify_golden.py`. It holds
//! every case of `shared/conformance/golden.json` unchanged (CI checks that) and, after them,
//! the project's own: the `nonfinite_*` cases (NaN and infinities in inputs and running
//! statistics), the `rms_*` cases of `RMSNorm`, the `recal_*` cases of `update_bn` and the
//! `half_*` cases (bfloat16 and float16 inputs, within 1e-2; the layers' parameters and
//! statistics are f64 here, and the half inputs are computed in f32 as on any device).

mod common;

use bn_layers::ComputePath;
use burn::tensor::{Device, FloatDType};
use common::Precision;

#[test]
fn golden_cases_pass_in_f64_on_both_paths() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    for path in [ComputePath::Fused, ComputePath::Composed] {
        common::assert_golden_passes(device.clone(), path, Precision::F64, 0);
        common::assert_precision_cases_pass(device.clone(), path, Precision::F64);
    }
}
