//! The models of the batch-normalization experiments, each with its normalization layer
//! chosen by a [`NormKind`]: batch (PyTorch-exact BatchNorm), Burn's built-in BatchNorm, GroupNorm,
//! LayerNorm, or none.
//!
//! | model | architecture | parameters (BN) |
//! |---|---|---|
//! | [`BnLeNet`] | D2L's LeNet-5 with BN after every layer but the last | 44,878 (none: 44,426) |
//! | [`MlpWithBn`] | 784-256-BN-ReLU-256-BN-ReLU-10 | 270,346 |
//! | [`MoonsMlp`] | 2-64-BN-ReLU-2 | 450 |
//!
//! The LeNet's 2×2 average pooling runs on [`kernels`]' flex kernel where it can.

pub mod convert;
mod fold;
pub mod kernels;
mod lenet;
mod mlp;
mod moons;
mod norm;
pub mod pytorch;
pub mod record;

pub use fold::FoldBatchNorm;
pub use lenet::{BnLeNet, BnLeNetConfig};
pub use mlp::{MlpWithBn, MlpWithBnConfig};
pub use moons::{MoonsMlp, MoonsMlpConfig};
pub use norm::{Norm, NormKind};
pub use pytorch::{InteropError, PytorchStateDict};

use burn::tensor::Tensor;

/// A model that maps a batch of inputs to class logits `[N, classes]`: what
/// `bn_train::train` trains and `bn_train::evaluate` scores.
pub trait Classify {
    /// One batch of inputs: `Tensor<4>` images `[N, 1, 28, 28]` for [`BnLeNet`] and
    /// [`MlpWithBn`], `Tensor<2>` points `[N, 2]` for [`MoonsMlp`].
    type Input;

    /// Class logits.
    fn classify(&self, input: Self::Input) -> Tensor<2>;

    /// The first normalization layer, whose learned `γ` and `β` reports print.
    fn first_norm(&self) -> Option<&crate::Norm>;

    /// A data-parallel replica: a copy with its own parameter storage (a clone would share
    /// it) holding the same values under the same parameter ids, its BatchNorm layers
    /// synchronized across `sync`'s group when given (PyTorch's
    /// `SyncBatchNorm.convert_sync_batchnorm`). `None`, the default, for a model without a
    /// replica form; data-parallel training then refuses it.
    fn replica(&self, sync: Option<&bn_layers::Replica>) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = sync;
        None
    }
}

/// The number of trainable values in `module`: float parameters that require gradients.
///
/// Burn's [`Module::num_params`](burn::module::Module::num_params) also counts running
/// statistics; PyTorch's `sum(p.numel() for p in model.parameters())` does not, and neither
/// does this. Count on a module built on an autodiff device (elsewhere nothing requires
/// gradients).
pub fn trainable_params<M: burn::module::Module>(module: &M) -> usize {
    use burn::module::{ModuleVisitor, Param};
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn lenet_parameter_counts_match_the_seed() {
        // D2L's PyTorch count, `scripts/train_lenet.py --count-params` (docs/pytorch/params.out).
        let with_bn = BnLeNetConfig::new().init(&device());
        assert_eq!(trainable_params(&with_bn), 44_878);
        let burn_bn = BnLeNetConfig::new()
            .with_norm(NormKind::BurnBatch)
            .init(&device());
        assert_eq!(trainable_params(&burn_bn), 44_878);
        let plain = BnLeNetConfig::new()
            .with_norm(NormKind::None)
            .init(&device());
        assert_eq!(trainable_params(&plain), 44_426);
    }

    #[test]
    fn mlp_parameter_counts_match_the_seed() {
        assert_eq!(
            trainable_params(&MlpWithBnConfig::new().init(&device())),
            270_346
        );
        let no_bias = MlpWithBnConfig::new()
            .with_hidden_bias(false)
            .init(&device());
        assert_eq!(trainable_params(&no_bias), 270_346 - 2 * 256);
        // 2*64+64 + 2*64 (BN) + 64*2+2
        assert_eq!(
            trainable_params(&MoonsMlpConfig::new().init(&device())),
            450
        );
    }

    #[test]
    fn every_norm_kind_gives_logits_of_the_right_shape() {
        let images = Tensor::<4>::ones([3, 1, 28, 28], &device());
        for norm in NormKind::ALL {
            let lenet = BnLeNetConfig::new().with_norm(norm).init(&device());
            assert_eq!(lenet.classify(images.clone()).dims(), [3, 10], "{norm}");
            let mlp = MlpWithBnConfig::new().with_norm(norm).init(&device());
            assert_eq!(mlp.classify(images.clone()).dims(), [3, 10], "{norm}");
            let moons = MoonsMlpConfig::new().with_norm(norm).init(&device());
            assert_eq!(
                moons.forward(Tensor::ones([3, 2], &device())).dims(),
                [3, 2]
            );
        }
    }

    #[test]
    fn norm_kind_parses_its_names() {
        for kind in NormKind::ALL {
            assert_eq!(kind.name().parse::<NormKind>(), Ok(kind));
        }
        // The name before the rename still parses, for old scripts.
        assert_eq!("ours".parse::<NormKind>(), Ok(NormKind::Batch));
        assert!(
            "bogus"
                .parse::<NormKind>()
                .unwrap_err()
                .contains("batch, burn")
        );
        assert_eq!(NormKind::groups_for(6), 3);
        assert_eq!(NormKind::groups_for(120), 4);
        assert_eq!(NormKind::groups_for(7), 1);
    }
}
