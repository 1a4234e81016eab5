//! `recalibrate` against hand computations of `update_bn`'s rule: reset, cumulative average
//! of the batch means and unbiased variances, momentum and training flags restored.

use burn::tensor::Device;

use super::*;
use crate::test_util::{assert_close, eval_device, tensor, train_device};
use crate::{BatchNorm, BatchNormConfig, InstanceNorm, InstanceNormConfig};

/// Batches of two samples of two features. Batch means [2, 4] and [2, 1]; unbiased
/// variances [2, 8] (rows 1,3 and 2,6) and [8, 2] (rows 0,4 and 0,2).
fn two_batches(device: &Device) -> Vec<Tensor<2>> {
    vec![
        tensor([1.0, 2.0, 3.0, 6.0], [2, 2], device),
        tensor([0.0, 0.0, 4.0, 2.0], [2, 2], device),
    ]
}

fn run(bn: &BatchNorm, batch: Tensor<2>) {
    bn.forward(batch);
}

#[test]
fn statistics_become_the_average_over_the_batches_whatever_they_were() {
    let device = train_device();
    let bn = BatchNormConfig::new_1d(2).init(&device);
    // Drift the statistics away from PyTorch's initial values first.
    bn.forward(tensor([9.0, -9.0, 19.0, 1.0], [2, 2], &device));
    assert_eq!(bn.num_batches_tracked(), Some(1));

    let bn = recalibrate(bn, two_batches(&device), run);
    let (mean, var) = bn.running_stats().unwrap();
    // By hand: means (2 + 2) / 2, (4 + 1) / 2; variances (2 + 8) / 2, (8 + 2) / 2.
    assert_close(mean, &[2.0, 2.5], 1e-6);
    assert_close(var, &[5.0, 5.0], 1e-6);
    assert_eq!(bn.num_batches_tracked(), Some(2));

    // The layer's momentum (0.1) applies again: 0.9 · [2, 2.5] + 0.1 · [10, 10].
    bn.forward(tensor([10.0, 10.0, 10.0, 10.0], [2, 2], &device));
    let (mean, _) = bn.running_stats().unwrap();
    assert_close(mean, &[2.8, 3.25], 1e-6);
    assert_eq!(bn.num_batches_tracked(), Some(3));
    assert!(!cumulative_average());
}

#[test]
fn an_evaluation_mode_model_trains_on_a_plain_device_and_stays_in_evaluation_mode() {
    let bn = BatchNormConfig::new_1d(2).init(&train_device()).valid();
    let device = eval_device();
    let bn = recalibrate(bn, two_batches(&device), run);
    let (mean, _) = bn.running_stats().unwrap();
    assert_close(mean, &[2.0, 2.5], 1e-6);
    assert!(!bn.is_training());
    assert!(!bn.training.trains_on(&device));
    // An evaluation forward leaves the statistics alone.
    bn.forward(tensor([10.0, 10.0, 10.0, 10.0], [2, 2], &device));
    assert_eq!(bn.num_batches_tracked(), Some(2));
}

#[derive(Module, Debug)]
struct Mixed {
    batch: BatchNorm,
    instance: InstanceNorm,
}

#[test]
fn only_batch_norm_statistics_are_reset() {
    let device = train_device();
    let model = Mixed {
        batch: BatchNormConfig::new_1d(2).init(&device),
        instance: InstanceNormConfig::new_1d(2)
            .with_track_running_stats(true)
            .init(&device),
    };
    let x = tensor([1.0, 2.0, 3.0, 7.0, 3.0, 2.0, 1.0, 5.0], [2, 2, 2], &device);
    model.batch.forward(x.clone());
    model.instance.forward(x);
    let instance_before = model.instance.running_stats().unwrap();

    // No batches: a reset and nothing else.
    let model = recalibrate(model, Vec::<Tensor<2>>::new(), |_: &Mixed, _| {});
    let (mean, var) = model.batch.running_stats().unwrap();
    assert_close(mean, &[0.0, 0.0], 0.0);
    assert_close(var, &[1.0, 1.0], 0.0);
    assert_eq!(model.batch.num_batches_tracked(), Some(0));
    let (mean, var) = model.instance.running_stats().unwrap();
    let want = |t: Tensor<1>| t.into_data().iter::<f64>().collect::<Vec<_>>();
    assert_close(mean, &want(instance_before.0), 0.0);
    assert_close(var, &want(instance_before.1), 0.0);
}

#[test]
fn a_panicking_forward_leaves_the_momentum_rule_as_it_was() {
    let device = train_device();
    let bn = BatchNormConfig::new_1d(2).init(&device);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        recalibrate(bn, two_batches(&device), |_: &BatchNorm, _| {
            panic!("bad batch")
        })
    }));
    assert!(outcome.is_err());
    assert!(!cumulative_average());
}
