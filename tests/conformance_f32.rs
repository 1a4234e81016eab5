//! Every case of `tests/data/pytorch_golden.json` (PyTorch 2.x float64 vectors, see
//! `conformance_f64.rs`) on flex in float32, through both compute paths, within 1e-4.

mod common;

use bn_layers::ComputePath;
use burn::tensor::Device;

#[test]
fn golden_cases_pass_in_f32_on_both_paths() {
    for path in [ComputePath::Fused, ComputePath::Composed] {
        common::assert_golden_passes(Device::flex(), path, 1e-4);
    }
}
