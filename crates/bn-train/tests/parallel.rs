//! Data-parallel training on synthetic data: two replicas with SyncBatchNorm follow one device
//! (burn-train's `Learner`) on the whole batch step by step, and end the epoch with its running
//! statistics and test accuracy; plain BatchNorm replicas do not.

use std::path::PathBuf;

use bn_models::{BnLeNet, BnLeNetConfig};
use bn_train::data::{TrainTest, write_synthetic};
use bn_train::{LrSchedule, RunOptions, TrainConfig, TrainError, TrainOutcome, train};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};

fn data(name: &str) -> (PathBuf, TrainTest) {
    let dir = std::env::temp_dir().join(format!("bn-parallel-{name}-{}", std::process::id()));
    write_synthetic(&dir, 256, 64).unwrap();
    let data = TrainTest::load(&dir).unwrap();
    (dir, data)
}

fn one_epoch(replicas: usize, sync_bn: bool, data: &TrainTest) -> TrainOutcome<BnLeNet> {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = BnLeNetConfig::new().init(&device);
    let config = TrainConfig::new()
        .with_epochs(1)
        .with_batch_size(32)
        .with_lr(0.05)
        .with_schedule(LrSchedule::Constant)
        .with_num_workers(0)
        .with_devices(replicas)
        .with_sync_bn(sync_bn);
    let artifacts = std::env::temp_dir().join(format!(
        "bn-parallel-run-{replicas}-{sync_bn}-{}",
        std::process::id()
    ));
    let outcome = train(
        model,
        "BN-LeNet",
        &config,
        data.clone(),
        &device,
        &artifacts,
        RunOptions::default(),
    )
    .unwrap();
    std::fs::remove_dir_all(artifacts).ok();
    outcome
}

/// Every BatchNorm's running mean, running variance and `num_batches_tracked`, in the order
/// of the model's layers: the tensors under a `running` submodule.
fn running_stats(model: &BnLeNet) -> (Vec<f64>, Vec<i64>) {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        floats: Vec<f64>,
        ints: Vec<i64>,
    }
    impl Collect {
        fn running(&self) -> bool {
            self.path.iter().any(|name| name == "running")
        }
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.running() {
                self.floats.extend(param.val().into_data().iter::<f64>());
            }
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            if self.running() {
                self.ints.extend(param.val().into_data().iter::<i64>());
            }
        }
    }
    let mut collect = Collect::default();
    model.visit(&mut collect);
    (collect.floats, collect.ints)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// One test, not several: each run seeds the device's generator, which tests running at once
// would share.
#[test]
fn two_synced_replicas_follow_one_device_and_plain_replicas_do_not() {
    let (dir, data) = data("follow");
    let single_run = one_epoch(1, false, &data);
    let synced_run = one_epoch(2, true, &data);
    let (single, synced) = (&single_run.step_losses, &synced_run.step_losses);
    let plain = one_epoch(2, false, &data).step_losses;
    assert_eq!(single.len(), 8);
    // f32 sums in another order: equal to rounding, step after step.
    let synced_diff = max_diff(synced, single);
    assert!(
        synced_diff < 1e-4,
        "SyncBN 2×16 vs 1×32: {synced_diff:e}\n{synced:?}\n{single:?}"
    );
    let plain_diff = max_diff(&plain, single);
    assert!(
        plain_diff > 100.0 * synced_diff.max(1e-7),
        "plain BN 2×16 vs 1×32: {plain_diff:e}"
    );

    // After the epoch, every BatchNorm's running statistics and count are one device's.
    let ((mean_var, counts), (synced_mean_var, synced_counts)) = (
        running_stats(&single_run.model.model),
        running_stats(&synced_run.model.model),
    );
    // Four BatchNorms: 6 + 16 + 120 + 84 channels, a mean and a variance each; 8 batches.
    assert_eq!(mean_var.len(), 2 * (6 + 16 + 120 + 84));
    assert_eq!(counts, [8, 8, 8, 8]);
    assert_eq!(synced_counts, counts);
    let worst = (mean_var.iter().zip(&synced_mean_var))
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "running statistics differ by {worst:e}");
    let accuracy = |outcome: &TrainOutcome<BnLeNet>| outcome.epochs[0].test_accuracy;
    let (one, two) = (accuracy(&single_run), accuracy(&synced_run));
    assert!((one - two).abs() <= 0.002, "test accuracy {one} vs {two}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn too_small_slices_are_refused() {
    let (dir, data) = data("small");
    let device = Device::flex().autodiff();
    let model = BnLeNetConfig::new().init(&device);
    let config = TrainConfig::new()
        .with_batch_size(4)
        .with_num_workers(0)
        .with_devices(4);
    let err = train(
        model,
        "BN-LeNet",
        &config,
        data,
        &device,
        &dir.join("run"),
        RunOptions::default(),
    )
    .err()
    .expect("one image per replica cannot give batch statistics");
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(err.to_string().contains("at least 2 images"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
