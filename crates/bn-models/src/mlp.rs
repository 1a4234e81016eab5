//! A multilayer perceptron with batch normalization between its linear layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use bn_layers::{Activation, NormError};

use crate::Classify;
use crate::fold::{FoldBatchNorm, fold_linear};
use crate::norm::{Norm, NormKind, apply, apply_activated};
use crate::pytorch::{LayerKind, PytorchStateDict};

/// Configuration of [`MlpWithBn`].
#[derive(Config, Debug)]
pub struct MlpWithBnConfig {
    /// The normalization after each hidden linear layer. Default: [`NormKind::Batch`].
    #[config(default = "NormKind::Batch")]
    pub norm: NormKind,
    /// Give the hidden linear layers a bias. Normalization subtracts the mean right after,
    /// so the bias is redundant there; `false` drops its 512 parameters. Default: `true`.
    #[config(default = true)]
    pub hidden_bias: bool,
    /// Normalize after the ReLU instead of before it (`MLPWithBN`'s layout is before).
    /// Default: `false`.
    #[config(default = false)]
    pub norm_after_activation: bool,
    /// Dropout probability after each hidden block (0 = no dropout layer). Default: 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// `784 → 256 → Norm → ReLU → 256 → Norm → ReLU → 10`: 270,346 parameters with batch
/// normalization and hidden biases (269,834 without the biases).
///
/// [`MlpWithBnConfig`] can also put the normalization after the ReLU
/// (`Linear → ReLU → Norm`) and add dropout after each hidden block, for the placement
/// experiment.
///
/// # Shapes
/// - input: `[N, 784]` (or images `[N, 1, 28, 28]` through [`Classify`])
/// - output: logits `[N, 10]`
#[derive(Module, Debug)]
pub struct MlpWithBn {
    fc1: Linear,
    /// Normalization after the first hidden layer.
    pub norm1: Option<Norm>,
    fc2: Linear,
    norm2: Option<Norm>,
    fc3: Linear,
    dropout: Option<Dropout>,
    /// Whether the normalization comes after the ReLU.
    #[module(skip)]
    norm_after_activation: bool,
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
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            norm_after_activation: self.norm_after_activation,
        }
    }
}

impl MlpWithBn {
    /// Class logits for flattened images.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.hidden_block(self.fc1.forward(x), &self.norm1);
        let x = self.hidden_block(self.fc2.forward(x), &self.norm2);
        self.fc3.forward(x)
    }

    /// Norm → ReLU (or ReLU → Norm), then dropout if configured.
    fn hidden_block(&self, x: Tensor<2>, norm: &Option<Norm>) -> Tensor<2> {
        let x = if self.norm_after_activation {
            apply(norm, relu(x))
        } else {
            apply_activated(norm, x, Activation::Relu)
        };
        match &self.dropout {
            Some(dropout) => dropout.forward(x),
            None => x,
        }
    }
}

impl FoldBatchNorm for MlpWithBn {
    fn fold_batchnorm(&self) -> Result<MlpWithBn, NormError> {
        if self.norm_after_activation && self.norm1.is_some() {
            return Err(NormError::NotFoldable {
                into: "Linear",
                reason: "the normalization comes after the ReLU, so no linear layer feeds it \
                         directly"
                    .into(),
            });
        }
        Ok(MlpWithBn {
            fc1: fold_linear(&self.fc1, &self.norm1)?,
            norm1: None,
            fc2: fold_linear(&self.fc2, &self.norm2)?,
            norm2: None,
            fc3: self.fc3.clone(),
            dropout: self.dropout.clone(),
            norm_after_activation: false,
        })
    }
}

/// PyTorch's classic `MLPWithBN` (`scripts/gen_interop.py`): `fc1`, `bn1`, `fc2`, `bn2`, `fc3`.
impl PytorchStateDict for MlpWithBn {
    const CLASS: &'static str = "MLPWithBN";
    const LAYERS: &'static [(&'static str, &'static str, LayerKind)] = &[
        ("fc1", "fc1", LayerKind::Linear),
        ("norm1", "bn1", LayerKind::BatchNorm),
        ("fc2", "fc2", LayerKind::Linear),
        ("norm2", "bn2", LayerKind::BatchNorm),
        ("fc3", "fc3", LayerKind::Linear),
    ];
}

impl Classify for MlpWithBn {
    type Input = Tensor<4>;

    fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images.flatten(1, 3))
    }

    fn first_norm(&self) -> Option<&Norm> {
        self.norm1.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn dropout_and_placement_keep_parameter_counts() {
        let device = Device::flex().autodiff();
        let count = |config: MlpWithBnConfig| crate::trainable_params(&config.init(&device));
        let seed_layout = count(MlpWithBnConfig::new());
        assert_eq!(
            count(MlpWithBnConfig::new().with_norm_after_activation(true)),
            seed_layout
        );
        assert_eq!(count(MlpWithBnConfig::new().with_dropout(0.5)), seed_layout);
    }

    #[test]
    fn dropout_is_off_in_evaluation_mode() {
        let device = Device::flex();
        let mlp = MlpWithBnConfig::new().with_dropout(0.5).init(&device);
        let x = Tensor::<2>::random([4, 784], Distribution::Default, &device);
        let a: Vec<f32> = mlp.forward(x.clone()).into_data().iter::<f32>().collect();
        let b: Vec<f32> = mlp.forward(x).into_data().iter::<f32>().collect();
        assert_eq!(a, b);
    }

    #[test]
    fn normalization_after_the_activation_does_not_fold() {
        let device = Device::flex();
        let mlp = MlpWithBnConfig::new()
            .with_norm_after_activation(true)
            .init(&device);
        let err = mlp.fold_batchnorm().unwrap_err();
        assert_eq!(err.kind(), "NotFoldable");
        assert!(err.to_string().contains("after the ReLU"), "{err}");
    }
}
