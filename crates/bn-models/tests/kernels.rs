//! The flex kernels against Burn's `AvgPool2d` and `Conv2d` in f32 (see `kernel_checks`).

mod kernel_checks;

use burn::tensor::Device;

#[test]
fn the_pooling_kernel_matches_burns_avg_pool_in_f32() {
    kernel_checks::pooling_matches_burn(&Device::flex().autodiff(), 1e-5);
}

#[test]
fn the_convolution_kernel_matches_burns_conv2d_in_f32() {
    kernel_checks::convolution_matches_burn(&Device::flex().autodiff(), 1e-5);
}
