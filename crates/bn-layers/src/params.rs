//! The learnable per-channel scale `gamma` and shift `beta`, built the same way by every layer.

use burn::module::Param;
use burn::tensor::{Device, Tensor};

/// A learnable `[size]` vector filled with `value`.
pub(crate) fn filled(size: usize, value: f64, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::full([size], value, device))
}

/// PyTorch's initial `(weight, bias)` = `(gamma, beta)` = `(1, 0)` when `affine`, else none.
pub(crate) fn affine(
    affine: bool,
    size: usize,
    device: &Device,
) -> (Option<Param<Tensor<1>>>, Option<Param<Tensor<1>>>) {
    match affine {
        true => (
            Some(filled(size, 1.0, device)),
            Some(filled(size, 0.0, device)),
        ),
        false => (None, None),
    }
}
