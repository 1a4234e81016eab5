//! Folding each model's normalization into the layer before it (see [`bn_layers::fold_into_linear`]).

use bn_layers::{NormError, fold_into_conv2d, fold_into_linear};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;

use crate::Norm;

/// Folds every BatchNorm of a network into the convolution or linear layer before it.
///
/// The result has no normalization layers and computes the same evaluation-mode outputs
/// (up to rounding) with fewer operations: the usual last step before serving a model.
pub trait FoldBatchNorm: Sized {
    /// The same network with its BatchNorms folded away.
    ///
    /// # Errors
    /// [`NormError::NotFoldable`] when a BatchNorm is in training mode (call
    /// [`valid`](burn::module::Module::valid) first) or keeps no running statistics, or when
    /// the network uses GroupNorm, LayerNorm or Burn's BatchNorm.
    fn fold_batchnorm(&self) -> Result<Self, NormError>;
}

/// `linear` with `norm` folded in; `linear` itself when there is no normalization.
pub(crate) fn fold_linear(linear: &Linear, norm: &Option<Norm>) -> Result<Linear, NormError> {
    match norm {
        None => Ok(linear.clone()),
        Some(Norm::Batch(bn)) => fold_into_linear(linear, bn),
        Some(Norm::Sync(sync)) => fold_into_linear(linear, &sync.bn),
        Some(other) => Err(unfoldable("Linear", other)),
    }
}

/// `conv` with `norm` folded in; `conv` itself when there is no normalization.
pub(crate) fn fold_conv(conv: &Conv2d, norm: &Option<Norm>) -> Result<Conv2d, NormError> {
    match norm {
        None => Ok(conv.clone()),
        Some(Norm::Batch(bn)) => fold_into_conv2d(conv, bn),
        Some(Norm::Sync(sync)) => fold_into_conv2d(conv, &sync.bn),
        Some(other) => Err(unfoldable("Conv2d", other)),
    }
}

fn unfoldable(into: &'static str, norm: &Norm) -> NormError {
    let reason = match norm {
        Norm::Burn(_) => {
            "folding takes bn-layers' BatchNorm (NormKind::Batch); Burn's built-in BatchNorm \
             keeps a biased running variance and is not supported"
        }
        _ => {
            "only BatchNorm folds: GroupNorm, LayerNorm, InstanceNorm and RMSNorm normalize \
             with statistics of each input, also in evaluation mode"
        }
    };
    NormError::NotFoldable {
        into,
        reason: reason.into(),
    }
}
