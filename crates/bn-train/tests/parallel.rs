//! Data-parallel training on synthetic data: two replicas with SyncBatchNorm follow one device
//! on the whole batch step by step; plain BatchNorm replicas do not.

use std::path::PathBuf;

use bn_models::{BnLeNet, BnLeNetConfig};
use bn_train::data::{TrainTest, write_synthetic};
use bn_train::{LrSchedule, Parallelism, TrainConfig, TrainError, train_data_parallel};
use burn::tensor::Device;

fn data(name: &str) -> (PathBuf, TrainTest) {
    let dir = std::env::temp_dir().join(format!("bn-parallel-{name}-{}", std::process::id()));
    write_synthetic(&dir, 256, 64).unwrap();
    let data = TrainTest::load(&dir).unwrap();
    (dir, data)
}

fn step_losses(replicas: usize, sync_bn: bool, data: &TrainTest) -> Vec<f64> {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = BnLeNetConfig::new().init(&device);
    let config = TrainConfig::new()
        .with_epochs(1)
        .with_batch_size(32)
        .with_lr(0.05)
        .with_schedule(LrSchedule::Constant)
        .with_num_workers(0);
    let parallelism = Parallelism { replicas, sync_bn };
    train_data_parallel(
        model,
        BnLeNet::replica,
        &config,
        parallelism,
        data.clone(),
        &device,
        |_| {},
    )
    .unwrap()
    .step_losses
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn two_synced_replicas_follow_one_device_and_plain_replicas_do_not() {
    let (dir, data) = data("follow");
    let single = step_losses(1, false, &data);
    let synced = step_losses(2, true, &data);
    let plain = step_losses(2, false, &data);
    assert_eq!(single.len(), 8);
    // f32 sums in another order: equal to rounding, step after step.
    let synced_diff = max_diff(&synced, &single);
    assert!(
        synced_diff < 1e-4,
        "SyncBN 2×16 vs 1×32: {synced_diff:e}\n{synced:?}\n{single:?}"
    );
    let plain_diff = max_diff(&plain, &single);
    assert!(
        plain_diff > 100.0 * synced_diff.max(1e-7),
        "plain BN 2×16 vs 1×32: {plain_diff:e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn too_small_slices_are_refused() {
    let (dir, data) = data("small");
    let device = Device::flex().autodiff();
    let model = BnLeNetConfig::new().init(&device);
    let config = TrainConfig::new().with_batch_size(4).with_num_workers(0);
    let parallelism = Parallelism {
        replicas: 4,
        sync_bn: false,
    };
    let err = train_data_parallel(
        model,
        BnLeNet::replica,
        &config,
        parallelism,
        data,
        &device,
        |_| {},
    )
    .err()
    .expect("one image per replica cannot give batch statistics");
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(err.to_string().contains("at least 2 images"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
