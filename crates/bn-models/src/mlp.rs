//! A multilayer perceptron with batch normalization between its linear layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::ImageClassifier;
use crate::norm::{Norm, NormKind, apply};

/// Configuration of [`MlpWithBn`].
#[derive(Config, Debug)]
pub struct MlpWithBnConfig {
    /// The normalization after each hidden linear layer. Default: ours.
    #[config(default = "NormKind::Ours")]
    pub norm: NormKind,
    /// Give the hidden linear layers a bias. Normalization subtracts the mean right after,
    /// so the bias is redundant there; `false` drops its 512 parameters. Default: `true`.
    #[config(default = true)]
    pub hidden_bias: bool,
}

/// `784 → 256 → Norm → ReLU → 256 → Norm → ReLU → 10`: 270,346 parameters with batch
/// normalization and hidden biases (269,834 without the biases).
///
/// # Shapes
/// - input: `[N, 784]` (or images `[N, 1, 28, 28]` through [`ImageClassifier`])
/// - output: logits `[N, 10]`
#[derive(Module, Debug)]
pub struct MlpWithBn {
    fc1: Linear,
    /// Normalization after the first hidden layer.
    pub norm1: Option<Norm>,
    fc2: Linear,
    norm2: Option<Norm>,
    fc3: Linear,
}

impl MlpWithBnConfig {
    /// Builds the network with PyTorch's default initialization.
    pub fn init(&self, device: &Device) -> MlpWithBn {
        let hidden = |d_in| {
            LinearConfig::new(d_in, 256)
                .with_bias(self.hidden_bias)
                .init(device)
        };
        MlpWithBn {
            fc1: hidden(784),
            norm1: self.norm.build(256, &[], device),
            fc2: hidden(256),
            norm2: self.norm.build(256, &[], device),
            fc3: LinearConfig::new(256, 10).init(device),
        }
    }
}

impl MlpWithBn {
    /// Class logits for flattened images.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = relu(apply(&self.norm1, self.fc1.forward(x)));
        let x = relu(apply(&self.norm2, self.fc2.forward(x)));
        self.fc3.forward(x)
    }
}

impl ImageClassifier for MlpWithBn {
    fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images.flatten(1, 3))
    }

    fn first_norm(&self) -> Option<&Norm> {
        self.norm1.as_ref()
    }
}
