//! LeNet-5 with batch normalization, as in D2L §8.5 ("Batch Normalization").

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use bn_layers::{Activation, NormError, Replica};

use crate::Classify;
use crate::fold::{FoldBatchNorm, fold_conv, fold_linear};
use crate::kernels::{avg_pool_2x2, conv2d};
use crate::norm::{Norm, NormKind, apply_activated, norm_kind, synchronize};
use crate::pytorch::{LayerKind, PytorchStateDict};

/// Configuration of [`BnLeNet`].
#[derive(Config, Debug)]
pub struct BnLeNetConfig {
    /// The normalization after each convolution and hidden linear layer. Default: [`NormKind::Batch`].
    #[config(default = "NormKind::Batch")]
    pub norm: NormKind,
}

/// D2L's BN-LeNet for 28×28 grayscale images and 10 classes:
///
/// ```text
/// Conv 6@5×5 → Norm → sigmoid → AvgPool 2 → Conv 16@5×5 → Norm → sigmoid → AvgPool 2
///   → FC 256→120 → Norm → sigmoid → FC 120→84 → Norm → sigmoid → FC 84→10
/// ```
///
/// 44,878 trainable parameters with batch normalization; [`NormKind::None`] gives the plain
/// LeNet with 44,426.
///
/// # Shapes
/// - input: `[N, 1, 28, 28]`
/// - output: logits `[N, 10]`
#[derive(Module, Debug)]
pub struct BnLeNet {
    conv1: Conv2d,
    /// Normalization after the first convolution (6 channels).
    pub norm1: Option<Norm>,
    conv2: Conv2d,
    norm2: Option<Norm>,
    fc1: Linear,
    norm3: Option<Norm>,
    fc2: Linear,
    norm4: Option<Norm>,
    fc3: Linear,
}

impl BnLeNetConfig {
    /// Builds the network with PyTorch's default initialization.
    pub fn init(&self, device: &Device) -> BnLeNet {
        let norm = self.norm;
        BnLeNet {
            conv1: Conv2dConfig::new([1, 6], [5, 5]).init(device),
            norm1: norm.build(6, &[24, 24], device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            norm2: norm.build(16, &[8, 8], device),
            fc1: LinearConfig::new(16 * 4 * 4, 120).init(device),
            norm3: norm.build(120, &[], device),
            fc2: LinearConfig::new(120, 84).init(device),
            norm4: norm.build(84, &[], device),
            fc3: LinearConfig::new(84, 10).init(device),
        }
    }
}

impl BnLeNet {
    /// The network with every [`NormKind::Batch`] layer turned into a [`SyncBatchNorm`] of
    /// `replica`'s group (PyTorch's `SyncBatchNorm.convert_sync_batchnorm`). Each replica
    /// needs its own copy of the parameters: use [`Classify::replica`].
    ///
    /// [`SyncBatchNorm`]: bn_layers::SyncBatchNorm
    pub fn synchronized(self, replica: &Replica) -> Self {
        Self {
            norm1: synchronize(self.norm1, replica),
            norm2: synchronize(self.norm2, replica),
            norm3: synchronize(self.norm3, replica),
            norm4: synchronize(self.norm4, replica),
            ..self
        }
    }

    /// Class logits for a batch of images. Each normalization and its sigmoid are one op
    /// where the norm is [`NormKind::Batch`] ([`bn_layers::BatchNormAct`]'s fusion).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let sigmoid = Activation::Sigmoid;
        let x = apply_activated(&self.norm1, conv2d(&self.conv1, images), sigmoid);
        let x = avg_pool_2x2(x);
        let x = apply_activated(&self.norm2, conv2d(&self.conv2, x), sigmoid);
        let x = avg_pool_2x2(x).flatten(1, 3);
        let x = apply_activated(&self.norm3, self.fc1.forward(x), sigmoid);
        let x = apply_activated(&self.norm4, self.fc2.forward(x), sigmoid);
        self.fc3.forward(x)
    }
}

impl FoldBatchNorm for BnLeNet {
    fn fold_batchnorm(&self) -> Result<BnLeNet, NormError> {
        Ok(BnLeNet {
            conv1: fold_conv(&self.conv1, &self.norm1)?,
            norm1: None,
            conv2: fold_conv(&self.conv2, &self.norm2)?,
            norm2: None,
            fc1: fold_linear(&self.fc1, &self.norm3)?,
            norm3: None,
            fc2: fold_linear(&self.fc2, &self.norm4)?,
            norm4: None,
            fc3: self.fc3.clone(),
        })
    }
}

/// The reference PyTorch `BNLeNet` (`scripts/gen_interop.py`): `self.net = nn.Sequential(...)`, so keys are `net.<index>.*`.
impl PytorchStateDict for BnLeNet {
    const CLASS: &'static str = "BNLeNet";
    const LAYERS: &'static [(&'static str, &'static str, LayerKind)] = &[
        ("conv1", "net.0", LayerKind::Conv),
        ("norm1", "net.1", LayerKind::BatchNorm),
        ("conv2", "net.4", LayerKind::Conv),
        ("norm2", "net.5", LayerKind::BatchNorm),
        ("fc1", "net.9", LayerKind::Linear),
        ("norm3", "net.10", LayerKind::BatchNorm),
        ("fc2", "net.12", LayerKind::Linear),
        ("norm4", "net.13", LayerKind::BatchNorm),
        ("fc3", "net.15", LayerKind::Linear),
    ];
}

impl Classify for BnLeNet {
    type Input = Tensor<4>;

    fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    fn first_norm(&self) -> Option<&Norm> {
        self.norm1.as_ref()
    }

    /// # Panics
    /// If `self` is already synchronized, or holds a [`Norm::Instance`] or [`Norm::Rms`] that
    /// no [`NormKind`] builds.
    fn replica(&self, sync: Option<&Replica>) -> Option<Self> {
        let device = self.conv1.weight.val().device();
        let copy = BnLeNetConfig::new()
            .with_norm(norm_kind(&self.norm1))
            .init(&device)
            .load_record(self.clone().into_record());
        Some(match sync {
            Some(replica) => copy.synchronized(replica),
            None => copy,
        })
    }
}
