//! The flex kernels against Burn's `AvgPool2d` and `Conv2d` in f64 (see `kernel_checks`).

mod kernel_checks;

use burn::tensor::{Device, FloatDType};

#[test]
fn the_kernels_match_burns_avg_pool_and_conv2d_in_f64() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    let device = device.autodiff();
    kernel_checks::pooling_matches_burn(&device, 1e-12);
    kernel_checks::convolution_matches_burn(&device, 1e-12);
}
