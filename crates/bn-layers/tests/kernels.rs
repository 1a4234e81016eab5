//! The flex kernels against the composed path in f32 (see `kernel_checks`), and the
//! kernels' in-place evaluation.

mod kernel_checks;

use bn_layers::BatchNormConfig;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use kernel_checks::{host, values};

#[test]
fn batch_norm_kernels_match_the_composed_path_in_f32() {
    kernel_checks::batch_norm_kernels_match(&Device::flex().autodiff());
}

#[test]
fn batch_norm_act_kernels_match_batch_norm_then_the_activation_in_f32() {
    kernel_checks::batch_norm_act_kernels_match(&Device::flex().autodiff());
}

#[test]
fn group_norm_kernels_match_the_composed_path_in_f32() {
    kernel_checks::group_norm_kernels_match(&Device::flex().autodiff());
}

#[test]
fn layer_norm_and_instance_norm_kernels_match_the_composed_path_in_f32() {
    kernel_checks::layer_norm_and_instance_norm_kernels_match(&Device::flex().autodiff());
}

#[test]
fn layer_norm_kernels_match_the_composed_path_over_many_rows() {
    kernel_checks::layer_norm_over_many_rows_matches(
        &Device::flex().autodiff(),
        &Device::flex().autodiff(),
    );
}

#[test]
fn evaluation_on_a_plain_device_overwrites_only_an_input_it_owns() {
    // The kernel writes into the input's buffer when the tensor is its only handle; a caller
    // that keeps the input must see it unchanged.
    let device = Device::flex();
    let bn = BatchNormConfig::new(3).init(&device).valid();
    let x = Tensor::<2>::from_data(TensorData::new(values(12, 4, 1.0, 2.0), [4, 3]), &device);
    let kept = host(x.clone());
    let y = host(bn.forward(x.clone()));
    assert_eq!(host(x.clone()), kept, "a shared input is left alone");
    let y_owned = host(bn.forward(x));
    assert_eq!(y_owned, y, "an owned input gives the same output");
    // Running statistics are the initial (0, 1): y = x / sqrt(1 + eps).
    for (y, x) in y.iter().zip(&kept) {
        assert!((y - x / (1.0f64 + 1e-5).sqrt()).abs() < 1e-6);
    }
}
