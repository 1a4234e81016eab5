//! The normalization layer a model uses, chosen at construction.

use bn_layers::{
    Activation, BatchNorm, BatchNormConfig, BatchRenorm, BatchRenormConfig, GhostBatchNorm,
    GhostBatchNormConfig, GroupNorm, GroupNormConfig, InstanceNorm, LayerNorm, LayerNormConfig,
    NormError, Replica, RmsNorm, SyncBatchNorm,
};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Which normalization a model puts after its convolutions and hidden linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NormKind {
    /// This workspace's PyTorch-exact [`BatchNorm`]. Named `ours` before 0.2, which command
    /// lines and saved configs may still say.
    #[default]
    #[serde(alias = "Ours")]
    Batch,
    /// Burn's built-in `burn::nn::BatchNorm` (biased running variance). Named `Burn` before
    /// 0.2, which saved configs may still say.
    #[serde(alias = "Burn")]
    BurnBatch,
    /// [`GroupNorm`] with a few channels per group (see [`NormKind::groups_for`]).
    Group,
    /// [`LayerNorm`] over each sample's features (`[C, H, W]` after a convolution).
    Layer,
    /// [`BatchRenorm`] with the paper's warm-up shortened tenfold for this workspace's runs
    /// (see [`NormKind::RENORM_WARMUP_STEPS`]) and PyTorch BatchNorm's momentum 0.1.
    Renorm,
    /// [`GhostBatchNorm`] with ghost batches of [`NormKind::GHOST_BATCH`] samples.
    Ghost,
    /// No normalization: the plain network.
    None,
}

impl NormKind {
    /// Every kind, in the order above.
    pub const ALL: [NormKind; 7] = [
        NormKind::Batch,
        NormKind::BurnBatch,
        NormKind::Group,
        NormKind::Layer,
        NormKind::Renorm,
        NormKind::Ghost,
        NormKind::None,
    ];

    /// [`NormKind::Renorm`]'s plain-BatchNorm steps at the start; `r_max` then reaches 3 at
    /// step 4,000 and `d_max` 5 at step 2,500: the paper's schedule (5,000, 40,000, 25,000
    /// steps) divided by ten, since the runs here take 500 to 30,000 steps. The running
    /// statistics move ten times faster too (momentum 0.1, not Keras's 0.01): with 0.01 they
    /// lag the weights of a one-epoch run at large batches, which takes few steps.
    pub const RENORM_WARMUP_STEPS: usize = 500;

    /// [`NormKind::Ghost`]'s samples per ghost batch: batches of up to 31 are one ghost
    /// batch, 128 is eight.
    pub const GHOST_BATCH: usize = 16;

    /// The lower-case name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            NormKind::Batch => "batch",
            NormKind::BurnBatch => "burn",
            NormKind::Group => "group",
            NormKind::Layer => "layer",
            NormKind::Renorm => "renorm",
            NormKind::Ghost => "ghost",
            NormKind::None => "none",
        }
    }

    /// GroupNorm's group count for `channels`: the largest of 4, 3, 2 that divides it, else 1.
    pub fn groups_for(channels: usize) -> usize {
        [4, 3, 2]
            .into_iter()
            .find(|g| channels.is_multiple_of(*g))
            .unwrap_or(1)
    }

    /// Builds the layer for features of shape `[channels, spatial...]` (`spatial` empty after a
    /// linear layer); `None` for [`NormKind::None`].
    pub fn build(self, channels: usize, spatial: &[usize], device: &Device) -> Option<Norm> {
        let mut features = vec![channels];
        features.extend_from_slice(spatial);
        let layer = match self {
            NormKind::Batch => Norm::Batch(BatchNormConfig::new(channels).init(device)),
            NormKind::BurnBatch => {
                Norm::Burn(burn::nn::BatchNormConfig::new(channels).init(device))
            }
            NormKind::Group => {
                Norm::Group(GroupNormConfig::new(Self::groups_for(channels), channels).init(device))
            }
            NormKind::Layer => Norm::Layer(LayerNormConfig::new(features).init(device)),
            NormKind::Renorm => Norm::Renorm(
                BatchRenormConfig::new(channels)
                    .with_momentum(0.1)
                    .with_warmup_steps(Self::RENORM_WARMUP_STEPS)
                    .with_r_max_steps(8 * Self::RENORM_WARMUP_STEPS)
                    .with_d_max_steps(5 * Self::RENORM_WARMUP_STEPS)
                    .init(device),
            ),
            NormKind::Ghost => Norm::Ghost(
                GhostBatchNormConfig::new(BatchNormConfig::new(channels), Self::GHOST_BATCH)
                    .init(device),
            ),
            NormKind::None => return None,
        };
        Some(layer)
    }
}

impl std::fmt::Display for NormKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for NormKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ours" {
            return Ok(NormKind::Batch); // its name before 0.2
        }
        NormKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = NormKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown norm '{s}', expected one of: {}", names.join(", "))
            })
    }
}

/// Any normalization layer of this workspace, or Burn's built-in BatchNorm: what the models
/// hold after their convolutions and hidden linear layers, and what the PyTorch conformance
/// runner builds from a golden case.
///
/// [`NormKind`] builds the first four and the last two; [`Norm::Sync`] is a [`Norm::Batch`] made a replica
/// by data-parallel training, and [`Norm::Instance`] and [`Norm::Rms`] are for a user's own
/// networks (no `NormKind` builds them: after a linear layer InstanceNorm would normalize
/// each single value to zero).
#[derive(Module, Debug)]
pub enum Norm {
    /// PyTorch-exact batch normalization.
    Batch(BatchNorm),
    /// Burn's built-in batch normalization.
    Burn(burn::nn::BatchNorm),
    /// Group normalization.
    Group(GroupNorm),
    /// Layer normalization.
    Layer(LayerNorm),
    /// [`Norm::Batch`] synchronized across data-parallel replicas (what data-parallel training builds per replica).
    Sync(SyncBatchNorm),
    /// Instance normalization.
    Instance(InstanceNorm),
    /// Root-mean-square normalization.
    Rms(RmsNorm),
    /// Batch renormalization.
    Renorm(BatchRenorm),
    /// Ghost batch normalization.
    Ghost(GhostBatchNorm),
}

impl Norm {
    /// Normalizes `[N, C, ...]` features.
    ///
    /// # Panics
    /// Where [`Norm::try_forward`] returns an error.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Norm::Batch(layer) => layer.forward(x),
            Norm::Burn(layer) => layer.forward(x),
            Norm::Group(layer) => layer.forward(x),
            Norm::Layer(layer) => layer.forward(x),
            Norm::Sync(layer) => layer.forward(x),
            Norm::Instance(layer) => layer.forward(x),
            Norm::Rms(layer) => layer.forward(x),
            Norm::Renorm(layer) => layer.forward(x),
            Norm::Ghost(layer) => layer.forward(x),
        }
    }

    /// Normalizes `[N, C, ...]` features, or says why the input does not fit the layer.
    ///
    /// # Errors
    /// The layer's [`NormError`] (wrong rank or channel count, a batch too small for batch
    /// statistics, a failed replica group). Burn's BatchNorm checks nothing and never errs.
    pub fn try_forward<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>, NormError> {
        match self {
            Norm::Batch(layer) => layer.try_forward(x),
            Norm::Burn(layer) => Ok(layer.forward(x)),
            Norm::Group(layer) => layer.try_forward(x),
            Norm::Layer(layer) => layer.try_forward(x),
            Norm::Sync(layer) => layer.try_forward(x),
            Norm::Instance(layer) => layer.try_forward(x),
            Norm::Rms(layer) => layer.try_forward(x),
            Norm::Renorm(layer) => layer.try_forward(x),
            Norm::Ghost(layer) => layer.try_forward(x),
        }
    }

    /// `activation(self.forward(x))`; for [`Norm::Batch`] (and each ghost batch of
    /// [`Norm::Ghost`]) one op, BatchNorm and activation fused ([`bn_layers::BatchNormAct`]).
    pub fn forward_activated<const D: usize>(
        &self,
        x: Tensor<D>,
        activation: Activation,
    ) -> Tensor<D> {
        match self {
            Norm::Batch(layer) => layer.forward_activated(x, activation),
            Norm::Ghost(layer) => layer.forward_activated(x, activation),
            other => activation.apply(other.forward(x)),
        }
    }

    /// The learned scale and shift (`γ`, `β`), flattened, where the layer has both (RMSNorm
    /// has no shift).
    pub fn affine(&self) -> Option<(Tensor<1>, Tensor<1>)> {
        match self {
            Norm::Batch(l) => Some((l.gamma.as_ref()?.val(), l.beta.as_ref()?.val())),
            Norm::Burn(l) => Some((l.gamma.val(), l.beta.val())),
            Norm::Group(l) => Some((l.gamma.as_ref()?.val(), l.beta.as_ref()?.val())),
            Norm::Layer(l) => Some((l.gamma.as_ref()?.val(), l.beta.as_ref()?.val())),
            Norm::Sync(l) => Some((l.bn.gamma.as_ref()?.val(), l.bn.beta.as_ref()?.val())),
            Norm::Instance(l) => Some((l.gamma.as_ref()?.val(), l.beta.as_ref()?.val())),
            Norm::Rms(_) => None,
            Norm::Renorm(l) => Some((l.gamma.as_ref()?.val(), l.beta.as_ref()?.val())),
            Norm::Ghost(l) => Some((l.norm.gamma.as_ref()?.val(), l.norm.beta.as_ref()?.val())),
        }
    }
}

/// The kind that builds `norm`.
///
/// # Panics
/// On a synchronized, instance or RMS normalization layer, which no [`NormKind`] builds.
pub(crate) fn norm_kind(norm: &Option<Norm>) -> NormKind {
    match norm {
        None => NormKind::None,
        Some(Norm::Batch(_)) => NormKind::Batch,
        Some(Norm::Burn(_)) => NormKind::BurnBatch,
        Some(Norm::Group(_)) => NormKind::Group,
        Some(Norm::Layer(_)) => NormKind::Layer,
        Some(Norm::Renorm(_)) => NormKind::Renorm,
        Some(Norm::Ghost(_)) => NormKind::Ghost,
        Some(Norm::Sync(_)) => panic!("a synchronized network is already a replica"),
        Some(Norm::Instance(_)) => panic!("no NormKind builds InstanceNorm"),
        Some(Norm::Rms(_)) => panic!("no NormKind builds RMSNorm"),
    }
}

/// `norm` with its BatchNorm synchronized across `replica`'s group (PyTorch's
/// `SyncBatchNorm.convert_sync_batchnorm` for one layer); other kinds normalize each sample
/// alone and stay as they are.
pub(crate) fn synchronize(norm: Option<Norm>, replica: &Replica) -> Option<Norm> {
    match norm {
        Some(Norm::Batch(bn)) => Some(Norm::Sync(SyncBatchNorm::new(bn, replica.clone()))),
        other => other,
    }
}

/// Applies an optional normalization layer.
pub(crate) fn apply<const D: usize>(norm: &Option<Norm>, x: Tensor<D>) -> Tensor<D> {
    match norm {
        Some(norm) => norm.forward(x),
        None => x,
    }
}

/// Applies an optional normalization layer and then `activation`, fused where the layer
/// allows ([`Norm::forward_activated`]).
pub(crate) fn apply_activated<const D: usize>(
    norm: &Option<Norm>,
    x: Tensor<D>,
    activation: Activation,
) -> Tensor<D> {
    match norm {
        Some(norm) => norm.forward_activated(x, activation),
        None => activation.apply(x),
    }
}
