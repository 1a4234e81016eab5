//! The CubeCL kernels on wgpu (lavapipe where there is no GPU) against the composed path in
//! f32, on the same odd shapes as the flex kernels (see `kernel_checks`).
#![cfg(feature = "wgpu")]

mod kernel_checks;

use burn::tensor::{Device, DeviceKind};

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice).autodiff()
}

#[test]
fn batch_norm_kernels_match_the_composed_path_on_wgpu() {
    kernel_checks::batch_norm_kernels_match(&wgpu());
}

#[test]
fn batch_norm_act_kernels_match_batch_norm_then_the_activation_on_wgpu() {
    kernel_checks::batch_norm_act_kernels_match(&wgpu());
}

#[test]
fn group_norm_kernels_match_the_composed_path_on_wgpu() {
    kernel_checks::group_norm_kernels_match(&wgpu());
}

#[test]
fn layer_norm_and_instance_norm_kernels_match_the_composed_path_on_wgpu() {
    kernel_checks::layer_norm_and_instance_norm_kernels_match(&wgpu());
}

#[test]
fn layer_norm_over_more_rows_than_a_grid_axis_holds_matches_on_wgpu() {
    kernel_checks::layer_norm_over_many_rows_matches(&wgpu(), &Device::flex().autodiff());
}
