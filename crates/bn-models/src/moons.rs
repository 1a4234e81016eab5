//! The two-moons classifier of the toy experiment in `scripts/moons.py`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use bn_layers::Activation;

use crate::Classify;
use crate::norm::{Norm, NormKind, apply_activated};

/// Configuration of [`MoonsMlp`].
#[derive(Config, Debug)]
pub struct MoonsMlpConfig {
    /// Width of the hidden layer. Default: 64.
    #[config(default = 64)]
    pub hidden: usize,
    /// The normalization after the hidden layer. Default: [`NormKind::Batch`].
    #[config(default = "NormKind::Batch")]
    pub norm: NormKind,
}

/// `2 → hidden → [Norm] → ReLU → 2`, for points of scikit-learn's `make_moons`.
///
/// # Shapes
/// - input: `[N, 2]`
/// - output: logits `[N, 2]`
#[derive(Module, Debug)]
pub struct MoonsMlp {
    fc1: Linear,
    /// Normalization after the hidden layer.
    pub norm: Option<Norm>,
    fc2: Linear,
}

impl MoonsMlpConfig {
    /// Builds the network with PyTorch's default initialization.
    pub fn init(&self, device: &Device) -> MoonsMlp {
        MoonsMlp {
            fc1: LinearConfig::new(2, self.hidden).init(device),
            norm: self.norm.build(self.hidden, &[], device),
            fc2: LinearConfig::new(self.hidden, 2).init(device),
        }
    }
}

impl MoonsMlp {
    /// Class logits for 2-D points.
    pub fn forward(&self, points: Tensor<2>) -> Tensor<2> {
        let hidden = self.fc1.forward(points);
        self.fc2
            .forward(apply_activated(&self.norm, hidden, Activation::Relu))
    }
}

impl Classify for MoonsMlp {
    type Input = Tensor<2>;

    fn classify(&self, points: Tensor<2>) -> Tensor<2> {
        self.forward(points)
    }

    fn first_norm(&self) -> Option<&Norm> {
        self.norm.as_ref()
    }
}
