//! The training pipeline under faults it must survive: a loss that turns NaN mid-run, long
//! runs, and inputs at extreme scales. (Kills, corrupt files and bad flags are tested on the
//! example binary, in the root package's `tests/main_job_*.rs`.)

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bn_models::{BnLeNet, BnLeNetConfig, Classify, Norm};
use bn_train::data::{ImageBatcher, TrainTest, write_synthetic};
use bn_train::{Classifier, RunOptions, TrainConfig, TrainError, last_checkpoint, train};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-reliability-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every float in `module` (parameters and running statistics).
fn floats<M: Module>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut all = Collect(Vec::new());
    module.visit(&mut all);
    all.0
}

/// BN-LeNet whose `poison_at`-th forward pass (counted from 0, training and evaluation alike)
/// returns NaN logits: a divergence at a known step.
#[derive(Module, Debug)]
struct PoisonedLeNet {
    net: BnLeNet,
    #[module(skip)]
    calls: Arc<AtomicUsize>,
    #[module(skip)]
    poison_at: usize,
}

impl Classify for PoisonedLeNet {
    type Input = Tensor<4>;

    fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        let logits = self.net.classify(images);
        match self.calls.fetch_add(1, Ordering::SeqCst) == self.poison_at {
            true => logits.mul_scalar(f32::NAN),
            false => logits,
        }
    }

    fn first_norm(&self) -> Option<&Norm> {
        self.net.first_norm()
    }
}

#[test]
fn a_nan_loss_stops_training_at_that_step_and_keeps_the_last_good_checkpoint() {
    let data = temp_dir("nan-data");
    // 160 training images in batches of 16: 10 steps an epoch; 40 test images: 3 batches.
    write_synthetic(&data, 160, 40).unwrap();
    let splits = TrainTest::load(&data).unwrap();
    let artifacts = temp_dir("nan-artifacts");
    let device = Device::flex().autodiff();
    let config = TrainConfig::new()
        .with_epochs(3)
        .with_batch_size(16)
        .with_num_workers(0);
    let poisoned = |poison_at| PoisonedLeNet {
        net: BnLeNetConfig::new().init(&device),
        calls: Arc::new(AtomicUsize::new(0)),
        poison_at,
    };
    // Epoch 1: calls 0-9 train, 10-12 evaluate; epoch 2 batch 3 is call 15.
    let model = poisoned(15);
    let err = train(
        model,
        "poisoned",
        &config,
        splits,
        &device,
        &artifacts,
        RunOptions::default(),
    )
    .err()
    .expect("a NaN loss stops training");
    let TrainError::Diverged { at, last_good, .. } = &err else {
        panic!("expected a divergence, got: {err}");
    };
    assert_eq!((at.epoch, at.batch, *last_good), (2, 3, Some(1)));
    assert!(at.loss.is_nan());
    let message = err.to_string();
    assert!(
        message.contains("the loss is NaN at epoch 2, batch 3"),
        "{message}"
    );
    assert!(
        message.contains("checkpoint (epoch 1) is intact"),
        "{message}"
    );

    // Epoch 1's checkpoint loads and is finite; nothing was written for epoch 2.
    assert_eq!(last_checkpoint(&artifacts), Some(1));
    let ckpt = artifacts.join("checkpoint");
    assert!(!ckpt.join("model-2.bpk").exists());
    let restored = Classifier::new(poisoned(usize::MAX)).load_file(ckpt.join("model-1.bpk"));
    assert!(floats(&restored).iter().all(|v| v.is_finite()));
    std::fs::remove_dir_all(data).ok();
    std::fs::remove_dir_all(artifacts).ok();
}

#[test]
fn ten_epochs_keep_losses_and_running_statistics_finite() {
    let data = temp_dir("long-data");
    write_synthetic(&data, 96, 32).unwrap();
    let splits = TrainTest::load(&data).unwrap();
    let artifacts = temp_dir("long-artifacts");
    let device = Device::flex().autodiff();
    let config = TrainConfig::new()
        .with_epochs(10)
        .with_batch_size(8)
        .with_lr(0.05)
        .with_num_workers(0);
    let model = BnLeNetConfig::new().init(&device);
    let outcome = train(
        model,
        "BN-LeNet",
        &config,
        splits,
        &device,
        &artifacts,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(outcome.epochs.len(), 10);
    for epoch in &outcome.epochs {
        assert!(
            epoch.train_loss.is_finite() && epoch.test_loss.is_finite(),
            "{epoch:?}"
        );
    }
    assert!(floats(&outcome.model).iter().all(|v| v.is_finite()));
    std::fs::remove_dir_all(data).ok();
    std::fs::remove_dir_all(artifacts).ok();
}

#[test]
fn inputs_scaled_by_1e4_and_1e_minus_4_train_with_finite_losses_and_statistics() {
    let data = temp_dir("scale-data");
    write_synthetic(&data, 64, 0).unwrap();
    let train_set = TrainTest::load(&data).unwrap().train;
    let device = Device::flex().autodiff();
    for scale in [1e4_f32, 1e-4] {
        device.seed(0);
        let mut model = BnLeNetConfig::new().init(&device);
        let mut optimizer = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
            .init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let mut losses = Vec::new();
        for _epoch in 0..4 {
            for start in (0..train_set.len()).step_by(16) {
                let items = (start..start + 16)
                    .map(|i| train_set.get(i).unwrap())
                    .collect();
                let batch = ImageBatcher.batch(items, &device);
                let logits = model.classify(batch.inputs.mul_scalar(scale));
                let loss = loss_fn.forward(logits, batch.targets);
                losses.push(loss.clone().into_scalar::<f64>());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(0.05, model, grads);
            }
        }
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "scale {scale}: {losses:?}"
        );
        assert!(
            losses[losses.len() - 4..].iter().sum::<f64>() < losses[..4].iter().sum::<f64>(),
            "scale {scale}: the loss did not fall: {losses:?}"
        );
        let values = floats(&model);
        assert!(values.iter().all(|v| v.is_finite()), "scale {scale}");
    }
    std::fs::remove_dir_all(data).ok();
}
