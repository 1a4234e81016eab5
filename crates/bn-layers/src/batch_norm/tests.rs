//! BatchNorm's unit tests. Expected values are PyTorch 2.x float64 output printed by
//! `scripts/semantics_probe.py` (sections 2 and 4), verbatim, or computed by hand
//! where a test shows the computation.

use super::*;
use crate::test_util::{assert_close, eval_device, tensor, train_device};
use burn::module::RunningState;

const X1: [f64; 12] = [1.0, 2.0, 0.5, 3.0, -1.0, 0.5, 5.0, 4.0, 2.0, 7.0, 0.0, 1.0];
const X2: [f64; 12] = [0.0, 1.0, 1.0, 2.0, 1.0, 3.0, -2.0, 5.0, 3.0, 4.0, 1.0, 1.0];

#[test]
fn training_normalizes_with_biased_variance_and_tracks_unbiased() {
    let device = train_device();
    let bn = BatchNormConfig::new_1d(3).init(&device);
    let y = bn.forward(tensor(X1, [4, 3], &device));
    #[rustfmt::skip]
    assert_close(y, &[
        -1.3416394449, 0.3905662034, -0.8164856945,
        -0.4472131483, -1.1716986101, -0.8164856945,
        0.4472131483, 1.4320760790, 1.6329713890,
        1.3416394449, -0.6509436723, 0.0,
    ], 1e-6);
    let (mean, var) = bn.running_stats().unwrap();
    assert_close(mean, &[0.4, 0.125, 0.1], 1e-6);
    assert_close(var, &[1.5666666666666669, 1.3916666666666666, 0.95], 1e-6);
    assert_eq!(bn.num_batches_tracked(), Some(1));

    bn.forward(tensor(X2, [4, 3], &device));
    let (mean, var) = bn.running_stats().unwrap();
    assert_close(mean, &[0.46, 0.3125, 0.29], 1e-6);
    assert_close(var, &[2.076666666666667, 1.6525, 0.9883333333333334], 1e-6);
    assert_eq!(bn.num_batches_tracked(), Some(2));
}

#[test]
fn composed_path_gives_the_same_running_statistics() {
    let device = train_device();
    let bn = BatchNormConfig::new_1d(3)
        .with_path(ComputePath::Composed)
        .init(&device);
    bn.forward(tensor(X1, [4, 3], &device));
    bn.forward(tensor(X2, [4, 3], &device));
    let (mean, var) = bn.running_stats().unwrap();
    assert_close(mean, &[0.46, 0.3125, 0.29], 1e-6);
    assert_close(var, &[2.076666666666667, 1.6525, 0.9883333333333334], 1e-6);
}

fn preset_eval_layer(path: ComputePath) -> BatchNorm {
    let device = eval_device();
    let mut bn = BatchNormConfig::new_1d(3).with_path(path).init(&device);
    bn.gamma = Some(Param::from_tensor(tensor([2.0, 1.0, -1.0], [3], &device)));
    bn.beta = Some(Param::from_tensor(tensor([0.5, 0.0, 1.0], [3], &device)));
    let running = bn.running.as_mut().expect("tracked by default");
    running.mean = RunningState::new(tensor([1.0, -1.0, 0.5], [3], &device));
    running.var = RunningState::new(tensor([4.0, 0.25, 1.0], [3], &device));
    bn
}

#[test]
fn evaluation_uses_running_statistics_and_leaves_them_alone() {
    for path in [ComputePath::Fused, ComputePath::Composed] {
        let bn = preset_eval_layer(path);
        assert!(
            !bn.training.trains_on(&eval_device()),
            "a plain device evaluates"
        );
        let x = tensor([3.0, 0.0, 0.5, 1.0, -1.0, 2.5], [2, 3], &eval_device());
        #[rustfmt::skip]
        assert_close(bn.forward(x.clone()), &[
            2.4999975000046875, 1.9999600011999599, 1.0,
            0.5, 0.0, -0.9999900000749994,
        ], 1e-6);
        // A single sample is fine in evaluation.
        assert_close(
            bn.forward(x.narrow(0, 0, 1)),
            &[2.4999975000046875, 1.9999600011999599, 1.0],
            1e-6,
        );
        let (mean, var) = bn.running_stats().unwrap();
        assert_close(mean, &[1.0, -1.0, 0.5], 0.0);
        assert_close(var, &[4.0, 0.25, 1.0], 0.0);
        assert_eq!(bn.num_batches_tracked(), Some(0));
    }
}

#[test]
fn without_running_statistics_evaluation_uses_the_batch() {
    let device = eval_device();
    let bn = BatchNormConfig::new_1d(3)
        .with_track_running_stats(false)
        .init(&device);
    assert!(bn.running.is_none() && bn.num_batches_tracked().is_none());
    let x = tensor([3.0, 0.0, 0.5, 1.0, -1.0, 2.5], [2, 3], &device);
    #[rustfmt::skip]
    assert_close(bn.forward(x.clone()), &[
        0.9999950000374997, 0.9999800005999799, -0.9999950000374996,
        -0.9999950000374997, -0.9999800005999799, 0.9999950000374999,
    ], 1e-6);
    let err = bn.try_forward(x.narrow(0, 0, 1)).unwrap_err();
    assert_eq!(err.kind(), "TooFewValues");
}

#[test]
fn momentum_none_is_the_cumulative_average() {
    let device = train_device();
    let bn = BatchNormConfig::new(1).with_momentum(None).init(&device);
    // Batches with means 1, 3 and 8 and unbiased variances 2, 8 and 0.5.
    for batch in [[0.0, 2.0], [1.0, 5.0], [7.5, 8.5]] {
        bn.forward(tensor(batch, [2, 1], &device));
    }
    let (mean, var) = bn.running_stats().unwrap();
    assert_close(mean, &[4.0], 1e-6);
    assert_close(var, &[3.5], 1e-6);
    assert_eq!(bn.num_batches_tracked(), Some(3));
}

#[test]
fn momentum_zero_freezes_statistics_but_still_counts() {
    let device = train_device();
    let bn = BatchNormConfig::new(2)
        .with_momentum(Some(0.0))
        .init(&device);
    bn.forward(tensor([1.0, 2.0, 3.0, 5.0], [2, 2], &device));
    let (mean, var) = bn.running_stats().unwrap();
    assert_close(mean, &[0.0, 0.0], 0.0);
    assert_close(var, &[1.0, 1.0], 0.0);
    assert_eq!(bn.num_batches_tracked(), Some(1));
}

#[test]
fn rank_rules_follow_pytorch_classes() {
    let device = train_device();
    let x3 = Tensor::<3>::ones([2, 3, 4], &device);
    let x4 = Tensor::<4>::ones([2, 3, 4, 4], &device);
    assert!(
        BatchNormConfig::new_1d(3)
            .init(&device)
            .try_forward(x3.clone())
            .is_ok()
    );
    let err = BatchNormConfig::new_1d(3)
        .init(&device)
        .try_forward(x4.clone());
    assert_eq!(err.unwrap_err().kind(), "InvalidRank");
    let err = BatchNormConfig::new_2d(3).init(&device).try_forward(x3);
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("expected 4D input, got a 3D input"),
        "{message}"
    );
    let err = BatchNormConfig::new_3d(3).init(&device).try_forward(x4);
    assert_eq!(err.unwrap_err().kind(), "InvalidRank");
}

#[test]
fn channel_mismatch_is_reported_unless_the_layer_has_no_per_channel_state() {
    let device = train_device();
    let x = Tensor::<4>::ones([2, 4, 3, 3], &device);
    let err = BatchNormConfig::new_2d(3)
        .init(&device)
        .try_forward(x.clone());
    let message = err.unwrap_err().to_string();
    assert!(message.contains("expected 3 channels"), "{message}");
    let bare = BatchNormConfig::new_2d(3)
        .with_affine(false)
        .with_track_running_stats(false)
        .init(&device);
    assert_eq!(bare.forward(x).dims(), [2, 4, 3, 3]);
}

#[test]
fn invalid_configurations_are_rejected() {
    let device = eval_device();
    for config in [
        BatchNormConfig::new(0),
        BatchNormConfig::new(3).with_eps(-1.0),
        BatchNormConfig::new(3).with_eps(f64::NAN),
        BatchNormConfig::new(3).with_momentum(Some(1.5)),
    ] {
        let err = config.try_init(&device).unwrap_err();
        assert_eq!(err.kind(), "InvalidConfig", "{config:?}");
    }
    // eps = 0 is fine for evaluation with running statistics, not for batch statistics.
    let bn = BatchNormConfig::new(2).with_eps(0.0).init(&train_device());
    let err = bn.try_forward(Tensor::<2>::ones([4, 2], &train_device()));
    assert_eq!(err.unwrap_err().kind(), "InvalidConfig");
}

#[test]
fn a_training_batch_of_one_sample_is_refused_with_a_hint_and_no_nan() {
    let device = train_device();
    let bn = BatchNormConfig::new(6).init(&device);
    let one_image = Tensor::<4>::ones([1, 6, 28, 28], &device);
    // 784 values per channel: enough, even though the batch holds one sample.
    assert!(bn.try_forward(one_image.clone()).is_ok());
    let err = bn
        .try_forward(Tensor::<2>::ones([1, 6], &device))
        .unwrap_err();
    assert_eq!(err.kind(), "TooFewValues");
    let message = err.to_string();
    assert!(message.contains("shape [1, 6]"), "{message}");
    assert!(message.contains("batch of at least 2 samples"), "{message}");
    assert!(message.contains("`.valid()`"), "{message}");
    // In evaluation mode the running statistics serve a single sample.
    let out = bn
        .valid()
        .forward(Tensor::<2>::ones([1, 6], &device.clone().inner()));
    assert!(out.into_data().iter::<f32>().all(f32::is_finite));
}

#[test]
#[should_panic(expected = "expected more than 1 value per channel")]
fn forward_panics_with_the_error_message() {
    let device = train_device();
    BatchNormConfig::new(3)
        .init(&device)
        .forward(Tensor::<2>::ones([1, 3], &device));
}

#[test]
fn valid_and_train_switch_modes_and_share_statistics() {
    let device = train_device();
    let bn = BatchNormConfig::new_1d(3).init(&device);
    assert!(bn.is_training());
    bn.forward(tensor(X1, [4, 3], &device));
    let eval = bn.valid();
    assert!(!eval.is_training());
    eval.forward(tensor(X2, [4, 3], &eval_device()));
    assert_eq!(
        eval.num_batches_tracked(),
        Some(1),
        "evaluation does not count"
    );
    let (mean, _) = eval.running_stats().unwrap();
    assert_close(mean, &[0.4, 0.125, 0.1], 1e-6);
    let back = eval.train();
    assert!(back.is_training());
    back.forward(tensor(X2, [4, 3], &device));
    assert_eq!(back.num_batches_tracked(), Some(2));
}

#[test]
fn empty_batch_is_counted_but_changes_nothing() {
    let device = train_device();
    let bn = BatchNormConfig::new(3).init(&device);
    let y = bn.forward(Tensor::<2>::zeros([0, 3], &device));
    assert_eq!(y.dims(), [0, 3]);
    assert_eq!(bn.num_batches_tracked(), Some(1));
    let (mean, _) = bn.running_stats().unwrap();
    assert_close(mean, &[0.0, 0.0, 0.0], 0.0);
}

#[test]
fn displays_in_pytorch_terms_and_shows_evaluation_mode() {
    let bn = BatchNormConfig::new(3).init(&train_device());
    let fields = "num_features: 3, eps: 0.00001, momentum: 0.1, affine: true, \
                  track_running_stats: true";
    // 12 parameters: γ, β, running mean and running variance, 3 each.
    assert_eq!(
        format!("{bn}"),
        format!("BatchNorm {{{fields}, params: 12}}")
    );
    assert_eq!(
        format!("{}", bn.valid()),
        format!("BatchNorm {{{fields}, training: disabled, params: 12}}")
    );
}

#[test]
fn a_layer_built_on_a_plain_device_trains_once_moved_to_autodiff() {
    // burn-nn's rule: the input's device decides. The batch [[0], [2]] has mean 1 and
    // unbiased variance 2, so one training step moves the running statistics to
    // (0.1·1, 0.9 + 0.1·2) = (0.1, 1.1); evaluation leaves them at (0, 1).
    let plain = BatchNormConfig::new(1).init(&eval_device());
    plain.forward(tensor([0.0, 2.0], [2, 1], &eval_device()));
    assert_eq!(
        plain.num_batches_tracked(),
        Some(0),
        "a plain device evaluates"
    );
    let moved = plain.train(); // Burn's way onto autodiff, gradients tracked
    let y = moved.forward(tensor([0.0, 2.0], [2, 1], &train_device()));
    assert_eq!(moved.num_batches_tracked(), Some(1));
    let (mean, var) = moved.running_stats().unwrap();
    assert_close(mean, &[0.1], 1e-6);
    assert_close(var, &[1.1], 1e-6);
    // And γ learns: x̂ = ±1/sqrt(1 + eps) (biased variance 1), so with dy = (1, 3),
    // dγ = Σ dy·x̂ = 2/sqrt(1 + 1e-5).
    let grads = (y * tensor([1.0, 3.0], [2, 1], &train_device()))
        .sum()
        .backward();
    let dgamma = moved.gamma.as_ref().unwrap().grad(&grads).unwrap();
    assert_close(dgamma, &[2.0 / (1.0f64 + 1e-5).sqrt()], 1e-6);
}

#[test]
fn set_training_trains_on_a_plain_device_and_valid_undoes_it() {
    let device = eval_device();
    let no_grad = crate::set_training(BatchNormConfig::new(1).init(&device), true);
    no_grad.forward(tensor([0.0, 2.0], [2, 1], &device));
    assert_eq!(
        no_grad.num_batches_tracked(),
        Some(1),
        "PyTorch's train() under no_grad"
    );
    let eval = no_grad.valid();
    eval.forward(tensor([0.0, 2.0], [2, 1], &device));
    assert_eq!(eval.num_batches_tracked(), Some(1));
    let forked = eval.train().fork(&device);
    forked.forward(tensor([0.0, 2.0], [2, 1], &device));
    assert_eq!(
        forked.num_batches_tracked(),
        Some(2),
        "train() restores set_training's mode"
    );
}

#[test]
fn a_record_round_trip_keeps_the_statistics_and_the_destination_s_mode() {
    // Burn records tensors, not flags: the loaded layer has the trained layer's running
    // statistics (one step on [[0], [2]]: mean 0.1, variance 1.1) and its own mode.
    let device = train_device();
    let trained = BatchNormConfig::new(1).init(&device);
    trained.forward(tensor([0.0, 2.0], [2, 1], &device));
    let loaded = BatchNormConfig::new(1)
        .init(&device)
        .load_record(trained.valid().into_record());
    assert!(loaded.is_training(), "the destination's mode");
    let (mean, var) = loaded.running_stats().unwrap();
    assert_close(mean, &[0.1], 1e-6);
    assert_close(var, &[1.1], 1e-6);
    assert_eq!(loaded.num_batches_tracked(), Some(1));
}
