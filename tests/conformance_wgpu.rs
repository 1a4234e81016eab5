//! Every case of `tests/data/pytorch_golden.json` (PyTorch 2.x float64 vectors, see
//! `conformance_f64.rs`) on wgpu in float32 (lavapipe where there is no GPU), and the precision
//! cases within twice PyTorch's float32 error. The bfloat16 cases are skipped: WGSL has no
//! bfloat16 arithmetic; the float16 ones run.
#![cfg(feature = "wgpu")]

mod common;

use bn_layers::ComputePath;
use burn_batchnorm::BackendKind;
use common::Precision;

/// The golden file's `half_bfloat16_*` cases.
const BFLOAT16_CASES: usize = 6;

#[test]
fn golden_cases_pass_on_wgpu_in_f32() {
    let device = BackendKind::Wgpu.device().expect("wgpu is compiled in");
    for path in [ComputePath::Fused, ComputePath::Composed] {
        common::assert_golden_passes(device.clone(), path, Precision::F32, BFLOAT16_CASES);
        common::assert_precision_cases_pass(device.clone(), path, Precision::F32);
    }
}
