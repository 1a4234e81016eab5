//! Frozen BatchNorm by hand computation: the fixed affine map, no statistics updated, no
//! gradient for `γ` and `β`, on a model this crate has never seen.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::*;
use crate::test_util::{assert_close, tensor, train_device};
use crate::{BatchNormAct, BatchNormActConfig, BatchNormConfig, GroupNorm, GroupNormConfig};

/// A user's model: BatchNorm inside and beside other layers, and a parameter of its own.
#[derive(Module, Debug)]
struct Unseen {
    scale: Param<Tensor<1>>,
    bn: BatchNorm,
    act: BatchNormAct,
    group: GroupNorm,
}

impl Unseen {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = x * self.scale.val().reshape([1, 2]);
        let x = self.act.forward(self.bn.forward(x));
        self.group.forward(x)
    }
}

#[test]
fn a_frozen_model_normalizes_with_fixed_statistics_and_learns_only_the_rest() {
    let device = train_device();
    let model = Unseen {
        scale: Param::from_tensor(Tensor::ones([2], &device)),
        bn: BatchNormConfig::new_1d(2).init(&device),
        act: BatchNormActConfig::new(BatchNormConfig::new_1d(2)).init(&device),
        group: GroupNormConfig::new(1, 2).init(&device),
    };
    // Training statistics first: running mean 0.1 · (2, 4), variance 0.9 + 0.1 · (2, 8).
    model.forward(tensor([1.0, 2.0, 3.0, 6.0], [2, 2], &device));
    let model = freeze_batchnorm(model).train();

    let x = tensor([1.0, 2.0, 3.0, 6.0], [2, 2], &device).require_grad();
    let y = model.bn.forward(x.clone());
    // By hand: (x - 0.2) / sqrt(1.1 + 1e-5) and (x - 0.4) / sqrt(1.7 + 1e-5).
    let (s0, s1) = ((1.1f64 + 1e-5).sqrt(), (1.7f64 + 1e-5).sqrt());
    let want = [0.8 / s0, 1.6 / s1, 2.8 / s0, 5.6 / s1];
    assert_close(y, &want, 1e-5);
    assert_eq!(
        model.bn.num_batches_tracked(),
        Some(1),
        "no update while frozen"
    );

    let grads = model.forward(x).sum().backward();
    for (name, frozen) in [("bn", &model.bn), ("act", &model.act.norm)] {
        assert!(!frozen.is_training(), "{name}");
        assert!(
            frozen.gamma.as_ref().unwrap().grad(&grads).is_none(),
            "{name} γ"
        );
        assert!(
            frozen.beta.as_ref().unwrap().grad(&grads).is_none(),
            "{name} β"
        );
    }
    assert!(
        model.scale.grad(&grads).is_some(),
        "the model's own parameter trains"
    );
    assert!(
        model.group.gamma.as_ref().unwrap().grad(&grads).is_some(),
        "GroupNorm trains"
    );
    assert_eq!(model.act.norm.num_batches_tracked(), Some(1));
}

#[test]
fn frozen_batch_norm_is_a_fixed_affine_map_with_no_learned_parameters() {
    let device = train_device();
    let fixed = |value: f64| Param::from_tensor(Tensor::full([1], value, &device));
    // weight 2, bias 1, mean 1, variance 3, eps 1: scale 2 / 2 = 1, shift 1 - 1 = 0.
    let frozen = FrozenBatchNorm {
        weight: fixed(2.0).set_require_grad(false),
        bias: fixed(1.0).set_require_grad(false),
        running_mean: fixed(1.0).set_require_grad(false),
        running_var: fixed(3.0).set_require_grad(false),
        eps: 1.0,
    };
    let x = tensor([-2.0, 0.5, 7.0], [3, 1], &device).require_grad();
    let y = frozen.forward(x.clone());
    let grads = y.clone().sum().backward();
    assert_close(y, &[-2.0, 0.5, 7.0], 1e-6);
    assert_close(x.grad(&grads).unwrap(), &[1.0, 1.0, 1.0], 1e-6);
    assert!(frozen.weight.grad(&grads).is_none());
    let err = frozen.try_forward(Tensor::<2>::ones([2, 3], &device));
    assert!(
        matches!(err, Err(NormError::ChannelMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn a_frozen_copy_of_a_batch_norm_computes_what_its_evaluation_mode_does() {
    let device = train_device();
    let bn = BatchNormConfig::new_2d(3).init(&device);
    let x = tensor(
        [
            0.5, -1.0, 2.0, 3.0, 1.5, -0.5, 4.0, 0.0, 1.0, 2.5, -2.0, 0.25,
        ],
        [2, 3, 2, 1],
        &device,
    );
    bn.forward(x.clone());
    let frozen = FrozenBatchNorm::from_batch_norm(&bn);
    let want: Vec<f64> = bn
        .valid()
        .forward(x.clone().without_autodiff())
        .into_data()
        .iter::<f64>()
        .collect();
    assert_close(frozen.forward(x), &want, 1e-6);
}
