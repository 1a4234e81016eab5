//! The activations [`BatchNormAct`](crate::BatchNormAct) fuses into batch normalization.

use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

/// An elementwise activation applied to a normalization's output inside the same op
/// (timm's `BatchNormAct2d` idea): the fused path computes it while the normalized value is
/// still in a register, and its backward from the saved output, so the activation costs no
/// extra pass over memory in either direction.
///
/// | variant | `f(z)` | `f'(z)` from the output `y` | PyTorch |
/// |---|---|---|---|
/// | `Relu` | `max(z, 0)`, NaN stays NaN | `0` where `y ≤ 0`, else `1` (a NaN output passes `dy` on) | `nn.ReLU` |
/// | `Sigmoid` | `1 / (1 + exp(-z))` | `y · (1 - y)` | `nn.Sigmoid` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// The rectified linear unit, `max(z, 0)`.
    Relu,
    /// The logistic sigmoid, `1 / (1 + exp(-z))`.
    Sigmoid,
}

impl Activation {
    /// The activation in Burn's tensor ops (the composed path).
    pub fn apply<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(z),
            Activation::Sigmoid => sigmoid(z),
        }
    }

    /// The lower-case name PyTorch's module has (`relu`, `sigmoid`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Applies `activation`, when there is one.
pub(crate) fn maybe_apply<const D: usize>(
    activation: Option<Activation>,
    z: Tensor<D>,
) -> Tensor<D> {
    match activation {
        Some(activation) => activation.apply(z),
        None => z,
    }
}
