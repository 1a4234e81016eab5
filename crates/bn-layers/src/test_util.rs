//! Helpers for the unit tests: devices and tolerant comparisons.

use burn::tensor::{Device, Tensor, TensorData};

/// Flex with autodiff: training forwards happen here.
pub(crate) fn train_device() -> Device {
    Device::flex().autodiff()
}

/// Plain flex: forwards here evaluate unless `set_training` asked otherwise.
pub(crate) fn eval_device() -> Device {
    Device::flex()
}

pub(crate) fn tensor<const D: usize, const N: usize>(
    values: [f64; N],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Asserts `|got - want| <= tol * max(1, |want|)` elementwise.
#[track_caller]
pub(crate) fn assert_close<const D: usize>(got: Tensor<D>, want: &[f64], tol: f64) {
    let got: Vec<f64> = got.into_data().iter::<f64>().collect();
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "index {i}: got {g}, want {w}\n got  {got:?}\n want {want:?}"
        );
    }
}
