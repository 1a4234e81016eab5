//! The flex kernels against the composed path in f64 (see `kernel_checks`).

mod kernel_checks;

use burn::tensor::{Device, FloatDType};

#[test]
fn kernels_match_the_composed_path_in_f64() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    let device = device.autodiff();
    kernel_checks::batch_norm_kernels_match(&device);
    kernel_checks::batch_norm_act_kernels_match(&device);
    kernel_checks::group_norm_kernels_match(&device);
    kernel_checks::layer_norm_and_instance_norm_kernels_match(&device);
    kernel_checks::layer_norm_over_many_rows_matches(&device, &device);
}
