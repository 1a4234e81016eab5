//! Every case of `tests/data/pytorch_golden.json` (PyTorch 2.x float64 vectors, see
//! `conformance_f64.rs`) on flex in float32, through both compute paths, within 1e-4; and
//! the precision cases (large means, small spreads) within twice PyTorch's float32 error.

mod common;

use bn_layers::ComputePath;
use burn::tensor::Device;
use common::Precision;

#[test]
fn golden_cases_pass_in_f32_on_both_paths() {
    for path in [ComputePath::Fused, ComputePath::Composed] {
        common::assert_golden_passes(Device::flex(), path, Precision::F32, 0);
    }
}

#[test]
fn precision_cases_are_no_worse_than_pytorch_f32_on_both_paths() {
    for path in [ComputePath::Fused, ComputePath::Composed] {
        common::assert_precision_cases_pass(Device::flex(), path, Precision::F32);
    }
}
