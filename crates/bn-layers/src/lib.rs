//! Batch normalization and its relatives for [Burn](https://burn.dev), with PyTorch's
//! semantics to the letter.
//!
//! | layer | PyTorch | statistics per | reduced over |
//! |---|---|---|---|
//! | [`BatchNorm`] | `nn.BatchNorm1d/2d/3d` | channel | batch and spatial positions |
//! | [`BatchNormAct`] | BatchNorm then `nn.ReLU`/`nn.Sigmoid` (timm's `BatchNormAct2d`), one op | channel | batch and spatial positions |
//! | [`BatchRenorm`] | none (Keras's `renorm=True`) | channel | batch and spatial positions, corrected towards the running statistics |
//! | [`FrozenBatchNorm`] | torchvision's `FrozenBatchNorm2d` (fixed statistics and affine) | channel | nothing: fixed running statistics |
//! | [`GhostBatchNorm`] | none (Keras's `virtual_batch_size`) | channel | each ghost batch and the spatial positions |
//! | [`LayerNorm`] | `nn.LayerNorm` | leading index | the trailing `normalized_shape` |
//! | [`RmsNorm`] | `nn.RMSNorm` (mean square only, no shift) | leading index | the trailing `normalized_shape` |
//! | [`GroupNorm`] | `nn.GroupNorm` | (sample, group) | the group's channels and positions |
//! | [`InstanceNorm`] | `nn.InstanceNorm1d/2d/3d` | (sample, channel) | spatial positions |
//! | [`SyncBatchNorm`] | `nn.SyncBatchNorm` | channel | every replica's batch and positions |
//!
//! Where these differ from `burn::nn`: the running variance is the **unbiased** batch
//! variance, `momentum: None` gives a cumulative average driven by `num_batches_tracked`,
//! `affine` and `track_running_stats` can be switched off, LayerNorm takes any
//! `normalized_shape`, InstanceNorm defaults to no affine, and bad input is a [`NormError`]
//! instead of a panic deep inside Burn.
//!
//! Config fields keep PyTorch's names; burn-nn's, where they differ:
//!
//! | here (PyTorch) | burn-nn |
//! |---|---|
//! | `eps` (every layer) | `epsilon` |
//! | `BatchNormConfig::momentum: Option<f64>` (`None`: cumulative average) | `momentum: f64` |
//! | `affine`, `track_running_stats` (BatchNorm, InstanceNorm) | always affine, always tracked (BatchNorm); InstanceNorm: `affine`, never tracked |
//! | `InstanceNormConfig::num_features` | `num_channels` |
//! | `LayerNormConfig::normalized_shape: Vec<usize>`, `elementwise_affine`, `bias` | `d_model: usize`, always affine, `bias` |
//! | GroupNorm: `num_groups`, `num_channels`, `affine` | the same |
//! | `RmsNormConfig::normalized_shape`, `eps: Option<f64>` (`None`: the input type's machine epsilon), `elementwise_affine` | `d_model`, `epsilon` (1e-5), always affine |
//!
//! [`recalibrate`] re-estimates every BatchNorm's running statistics of a trained model from
//! data, as PyTorch's `torch.optim.swa_utils.update_bn` does; [`freeze_batchnorm`] freezes
//! every BatchNorm of any model in place (torchvision's `FrozenBatchNorm2d` behaviour).
//!
//! Half-precision inputs (f16, bf16) are normalized with f32 statistics and accumulation and
//! returned in their own dtype, as PyTorch's BatchNorm treats them. A half model (built on a
//! device configured with `FloatDType::F16` or `BF16`) has half parameters but keeps its
//! running statistics in f32, where burn-nn's `running_var` underflows; `stats_dtype` on
//! BatchNorm's, InstanceNorm's and BatchRenorm's configs chooses otherwise.
//!
//! Every layer computes through one of two paths ([`ComputePath`]): the fused one (the
//! default) records each layer as one autodiff node with a closed-form backward
//! ([`NormKernels`]): hand-written kernels on flex (the `flex` feature: rayon, AVX2 where the
//! CPU has it, no buffers beyond the output, the statistics and the input gradient), CubeCL
//! kernels on Burn's `Cube` backend (the `cube` feature, or `wgpu`; f32; with Burn's fusion
//! on or off), the same math in Burn's tensor ops on every
//! other backend and wherever this crate was built without the backend's feature (none is on
//! by default); the composed one is the textbook algorithm in plain tensor ops. Both are
//! checked against PyTorch; on the precision cases (large means, tiny spreads) the fused
//! path's float32 error stays below PyTorch's own.
//!
//! Training versus evaluation is decided at each forward, as burn-nn decides it
//! ([`TrainingMode`]): a layer trains when its `training` mode is enabled and its input is on
//! an autodiff device. [`Module::valid`](burn::module::Module::valid) is PyTorch's
//! `model.eval()`, [`Module::train`](burn::module::Module::train) goes back, and
//! [`set_training`] sets the mode of a whole model without leaving its device (training on a
//! plain device is PyTorch's `model.train()` under `torch.no_grad()`).
//!
//! ```
//! use bn_layers::BatchNormConfig;
//! use burn::module::Module;
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex().autodiff();
//! let bn = BatchNormConfig::new_2d(3).init(&device); // PyTorch's nn.BatchNorm2d(3)
//! let x = Tensor::<4>::ones([8, 3, 4, 4], &device);
//! let y = bn.forward(x.clone()); // training: batch statistics, running stats updated
//! assert_eq!(bn.num_batches_tracked(), Some(1));
//!
//! let eval = bn.valid(); // PyTorch's bn.eval()
//! let _ = eval.forward(x.without_autodiff());
//! assert_eq!(y.dims(), [8, 3, 4, 4]);
//! ```

mod activation;
mod batch_norm;
mod batch_norm_act;
mod batch_renorm;
mod compute_path;
mod counter;
mod display;
mod error;
mod fold;
mod frozen;
mod functional;
mod ghost_batch_norm;
mod group_norm;
mod instance_norm;
mod kernels;
mod layer_norm;
mod module_path;
mod normalized_shape;
mod params;
mod precision;
mod rank;
mod recalibrate;
mod rms_norm;
mod running;
mod sync;
mod training;

#[cfg(test)]
mod test_util;

pub use activation::Activation;
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use batch_norm_act::{BatchNormAct, BatchNormActConfig};
pub use batch_renorm::{BatchRenorm, BatchRenormConfig};
pub use compute_path::ComputePath;
pub use counter::BatchCounter;
pub use error::NormError;
pub use fold::{fold_into_conv2d, fold_into_linear};
pub use frozen::{FrozenBatchNorm, freeze_batchnorm};
pub use ghost_batch_norm::{GhostBatchNorm, GhostBatchNormConfig};
pub use group_norm::{GroupNorm, GroupNormConfig};
pub use instance_norm::{InstanceNorm, InstanceNormConfig};
pub use kernels::{NormGradKernels, NormKernels, has_kernels};
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use rank::InputRank;
pub use recalibrate::recalibrate;
pub use rms_norm::{RmsNorm, RmsNormConfig};
pub use running::{RunningStats, publish_running_state};
pub use sync::{Replica, ReplicaGroup, ReplicaSumBackend, StatsReducer, SyncBatchNorm};
pub use training::{TrainingMode, set_training};

/// The crate README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
