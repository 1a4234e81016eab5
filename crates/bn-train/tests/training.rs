//! Training end to end on a tiny synthetic data set: the loss falls, the artifacts appear,
//! a checkpoint holds the final parameters, and `resume` continues from it.

use std::path::PathBuf;

use bn_models::{BnLeNet, BnLeNetConfig, NormKind};
use bn_train::data::{TrainTest, write_synthetic};
use bn_train::{Classifier, OptimizerKind, RunOptions, TrainConfig, last_checkpoint, train};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-train-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn params(model: &Classifier<BnLeNet>) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut all = Collect(Vec::new());
    model.visit(&mut all);
    all.0
}

#[test]
fn two_epochs_lower_the_loss_write_artifacts_and_resume() {
    let data = temp_dir("synthetic");
    write_synthetic(&data, 161, 40).unwrap();
    let splits = TrainTest::load(&data).unwrap();
    let artifacts = temp_dir("artifacts");
    let device = Device::flex().autodiff();
    let config = TrainConfig::new()
        .with_epochs(2)
        .with_batch_size(16)
        .with_lr(0.01)
        .with_optimizer(OptimizerKind::Adam)
        .with_num_workers(0);
    let model = BnLeNetConfig::new()
        .with_norm(NormKind::Batch)
        .init(&device);
    let outcome = train(
        model,
        "BN-LeNet",
        &config,
        splits.clone(),
        &device,
        &artifacts,
        RunOptions::default(),
    )
    .unwrap();

    let epochs = &outcome.epochs;
    assert_eq!(epochs.len(), 2);
    assert!(
        epochs[1].train_loss < epochs[0].train_loss,
        "loss did not fall: {epochs:?}"
    );
    // 161 = 10 * 16 + 1: the final one-sample batch is left out.
    assert_eq!(outcome.report.train_images, 160);
    assert_eq!(outcome.report.trainable_params, 44_878);
    assert_eq!(
        outcome.report.first_norm_gamma.as_ref().map(Vec::len),
        Some(6)
    );
    for file in ["config.json", "metrics.csv", "curves.svg", "report.json"] {
        assert!(artifacts.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(artifacts.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // The last checkpoint holds exactly the trained parameters.
    assert_eq!(last_checkpoint(&artifacts), Some(2));
    let fresh = Classifier::new(BnLeNetConfig::new().init(&device));
    let loaded = fresh.load_file(artifacts.join("checkpoint/model-2.bpk"));
    assert_eq!(params(&loaded), params(&outcome.model));

    // Resume to a third epoch from that checkpoint.
    let more = config.clone().with_epochs(3);
    let model = BnLeNetConfig::new().init(&device);
    let resumed = train(
        model,
        "BN-LeNet",
        &more,
        splits.clone(),
        &device,
        &artifacts,
        RunOptions::resume(),
    )
    .unwrap();
    assert_eq!(resumed.report.epochs, 3);
    assert_eq!(resumed.report.epochs_this_run, 1);
    assert_eq!(resumed.epochs.len(), 3);
    assert_eq!(resumed.epochs[..2], outcome.epochs[..]);
    assert_eq!(last_checkpoint(&artifacts), Some(3));

    // A resume with another recipe is refused, naming the difference.
    let other = more.clone().with_lr(0.5).with_epochs(4);
    let model = BnLeNetConfig::new().init(&device);
    let err = train(
        model,
        "BN-LeNet",
        &other,
        splits,
        &device,
        &artifacts,
        RunOptions::resume(),
    )
    .err()
    .expect("a changed recipe cannot resume");
    assert!(
        err.to_string().contains("only --epochs may change"),
        "{err}"
    );
    std::fs::remove_dir_all(data).ok();
    std::fs::remove_dir_all(artifacts).ok();
}

#[test]
fn bad_recipes_are_refused_before_training() {
    let config = TrainConfig::new().with_batch_size(1);
    assert!(config.validate().unwrap_err().contains("--batch-size"));
    assert!(
        TrainConfig::new()
            .with_lr(-1.0)
            .validate()
            .unwrap_err()
            .contains("--lr")
    );
    assert!(
        TrainConfig::new()
            .with_epochs(0)
            .validate()
            .unwrap_err()
            .contains("--epochs")
    );
}
