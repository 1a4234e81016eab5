//! `train` on a data set other than Fashion-MNIST: scikit-learn's two moons and the 2-64-2
//! MLP of `scripts/moons.py`, the recipe of the `mlp_moons` experiment.

use bn_models::{MoonsMlpConfig, NormKind};
use bn_train::data::{TrainTest, make_moons};
use bn_train::{LrSchedule, RunOptions, TrainConfig, TrainError, train};
use burn::tensor::Device;

/// moons.py's recipe at lr 0.1 with BatchNorm: plain SGD, batch 32, 10 epochs, seed 42.
fn recipe() -> TrainConfig {
    TrainConfig::new()
        .with_epochs(10)
        .with_batch_size(32)
        .with_lr(0.1)
        .with_momentum(0.0)
        .with_schedule(LrSchedule::Constant)
        .with_seed(42)
        .with_num_workers(0)
}

#[test]
fn the_moons_mlp_trains_on_train_as_in_pytorch() {
    let moons = make_moons(1000, 0.1, 42);
    let data = TrainTest {
        train: moons.clone(),
        test: moons,
    };
    let device = Device::flex().autodiff();
    device.seed(42);
    let model = MoonsMlpConfig::new()
        .with_norm(NormKind::Batch)
        .init(&device);
    let artifacts = std::env::temp_dir().join(format!("bn-train-moons-{}", std::process::id()));
    let outcome = train(
        model,
        "MoonsMlp",
        &recipe(),
        data.clone(),
        &device,
        &artifacts,
        RunOptions::quiet(),
    )
    .unwrap();

    // 1,000 points in batches of 32: 32 steps per epoch, the last of 8 points.
    assert_eq!(outcome.step_losses.len(), 10 * 32);
    assert_eq!(outcome.report.train_images, 1000);
    assert!(artifacts.join("checkpoint/model-10.bpk").is_file());
    // docs/pytorch/moons.out (scripts/moons.py, PyTorch 2.15), lr 0.1 with BN: the last
    // epoch's mean batch loss 0.2155, evaluation-mode accuracy on all points 0.918. Our
    // initialization and shuffling draw from other generators, hence the tolerances.
    let last_epoch = &outcome.step_losses[9 * 32..];
    let last_loss = last_epoch.iter().sum::<f64>() / 32.0;
    assert!(
        (last_loss - 0.2155).abs() < 0.05,
        "last epoch's loss {last_loss}"
    );
    let accuracy = outcome.report.final_test_accuracy;
    assert!((accuracy - 0.918).abs() < 0.03, "accuracy {accuracy}");

    // The MLP has no replica form: data-parallel training refuses it by name.
    let model = MoonsMlpConfig::new().init(&device);
    let err = train(
        model,
        "MoonsMlp",
        &recipe().with_devices(2),
        data,
        &device,
        &artifacts,
        RunOptions::quiet(),
    )
    .err()
    .expect("no replicas of the moons MLP");
    assert!(
        matches!(&err, TrainError::Config(message) if message.contains("no data-parallel replica form")),
        "{err}"
    );
    std::fs::remove_dir_all(artifacts).ok();
}
