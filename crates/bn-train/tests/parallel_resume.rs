//! A data-parallel run (2 replicas, SyncBatchNorm, SGD momentum 0.9 on a cosine schedule)
//! resumed from its epoch-1 checkpoint ends bit for bit where the uninterrupted run ends:
//! every parameter, running statistic and `num_batches_tracked`, and `metrics.csv`.
//!
//! Its own test binary: each run seeds the device's generator, which tests running at once
//! in one process would share.

use std::path::{Path, PathBuf};

use bn_models::{BnLeNet, BnLeNetConfig};
use bn_train::data::{TrainTest, write_synthetic};
use bn_train::{RunOptions, TrainConfig, TrainOutcome, train};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-dp-resume-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn two_epochs(data: &TrainTest, artifacts: &Path, resume: bool) -> TrainOutcome<BnLeNet> {
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = BnLeNetConfig::new().init(&device);
    let config = TrainConfig::new()
        .with_epochs(2)
        .with_batch_size(32)
        .with_lr(0.05)
        .with_num_workers(0)
        .with_devices(2)
        .with_sync_bn(true);
    train(
        model,
        "BN-LeNet",
        &config,
        data.clone(),
        &device,
        artifacts,
        RunOptions {
            resume,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

/// Every float and integer the model holds, parameters and buffers, in the model's order.
fn all_values(model: &BnLeNet) -> (Vec<f64>, Vec<i64>) {
    #[derive(Default)]
    struct Collect(Vec<f64>, Vec<i64>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f64>());
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            self.1.extend(param.val().into_data().iter::<i64>());
        }
    }
    let mut collect = Collect::default();
    model.visit(&mut collect);
    (collect.0, collect.1)
}

#[test]
fn a_resumed_data_parallel_run_ends_where_the_uninterrupted_one_ends() {
    let data_dir = scratch("data");
    write_synthetic(&data_dir, 256, 64).unwrap();
    let data = TrainTest::load(&data_dir).unwrap();

    let straight_dir = scratch("straight");
    let straight = two_epochs(&data, &straight_dir, false);

    // The same run, then its epoch-2 checkpoint removed as if it had been killed before
    // writing it: `--resume` retrains epoch 2 from epoch 1's model, momentum and schedule.
    let resumed_dir = scratch("resumed");
    two_epochs(&data, &resumed_dir, false);
    let checkpoints = resumed_dir.join("checkpoint");
    for record in ["model", "optim", "scheduler"] {
        assert!(checkpoints.join(format!("{record}-1.bpk")).is_file());
        std::fs::remove_file(checkpoints.join(format!("{record}-2.bpk"))).unwrap();
    }
    let resumed = two_epochs(&data, &resumed_dir, true);

    assert_eq!(
        resumed.step_losses.len(),
        8,
        "only epoch 2 was trained again"
    );
    assert_eq!(resumed.report.epochs_this_run, 1);
    let (values, counts) = all_values(&straight.model.model);
    let (resumed_values, resumed_counts) = all_values(&resumed.model.model);
    assert_eq!(counts, resumed_counts);
    assert_eq!(
        counts[..4],
        [16, 16, 16, 16],
        "num_batches_tracked after 2 × 8 steps"
    );
    assert_eq!(values.len(), resumed_values.len());
    let differing = values
        .iter()
        .zip(&resumed_values)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differing, 0, "of {} values", values.len());
    let csv = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv(&straight_dir), csv(&resumed_dir));
    assert_eq!(csv(&resumed_dir).lines().count(), 3);
    for dir in [data_dir, straight_dir, resumed_dir] {
        std::fs::remove_dir_all(dir).ok();
    }
}
