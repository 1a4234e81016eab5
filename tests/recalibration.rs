//! BatchNorm recalibration of the committed PyTorch checkpoints against PyTorch's
//! `torch.optim.swa_utils.update_bn`.
//!
//! `tests/data/interop/recalibrated.json` was written by `scripts/gen_recalibration.py`
//! (PyTorch 2.15): `update_bn` over the first 1,000 Fashion-MNIST training images in file
//! order, batches of 128, on `bn_lenet.pt` and `mlp_with_bn.pt`; every BatchNorm's running
//! statistics afterwards and the eval-mode test accuracy before and after. The main job's
//! `--recalibrate` runs on synthetic data.

mod main_job;

use std::path::{Path, PathBuf};

use bn_models::pytorch::{load_state_dict, running_statistics};
use bn_models::{BnLeNetConfig, MlpWithBnConfig, PytorchStateDict};
use bn_train::data::{FashionMnist, Split, locate, write_synthetic};
use bn_train::{evaluate, recalibrate_on};
use burn::tensor::Device;
use main_job::*;
use serde_json::Value;

fn interop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/interop")
        .join(name)
}

fn split(split: Split) -> FashionMnist {
    let dir = locate(None).expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
    FashionMnist::load(&dir, split).unwrap()
}

/// Recalibrates `model` (loaded from `<name>.pt`) as the generator did and compares every
/// running statistic to 1e-5 and the test accuracy exactly (as a count of images).
fn assert_recalibrates_as_pytorch<M>(model: M, name: &str)
where
    M: PytorchStateDict + bn_models::Classify<Input = burn::tensor::Tensor<4>>,
{
    let text = std::fs::read_to_string(interop("recalibrated.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let images = json["images"].as_u64().unwrap() as usize;
    let batch_size = json["batch_size"].as_u64().unwrap() as usize;
    let expected = &json["models"][name];

    let device = Device::flex();
    let model = load_state_dict(model, &interop(&format!("{name}.pt")))
        .unwrap()
        .valid();
    let test = split(Split::Test);
    let correct = |model: &M| evaluate(model, &test, 500, 0, &device).correct as f64;
    let count = |key: &str| (expected[key].as_f64().unwrap() * 10_000.0).round();
    assert_eq!(
        correct(&model),
        count("eval_test_accuracy_before"),
        "{name}"
    );

    let model = recalibrate_on(model, &split(Split::Train), images, batch_size, &device);
    let ours = running_statistics(&model);
    let layers = expected["batchnorms"].as_object().unwrap();
    assert_eq!(
        ours.len(),
        3 * layers.len(),
        "{name}: three statistics per BatchNorm"
    );
    for (prefix, layer) in layers {
        for (stat, want) in layer.as_object().unwrap() {
            let Some((_, got)) = ours
                .iter()
                .find(|(key, _)| *key == format!("{prefix}.{stat}"))
            else {
                assert_eq!(stat, "momentum", "{name}: {prefix}.{stat} missing");
                continue;
            };
            let want: Vec<f64> = match want {
                Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).collect(),
                number => vec![number.as_f64().unwrap()],
            };
            assert_eq!(got.len(), want.len(), "{name}: {prefix}.{stat}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{name}: {prefix}.{stat}[{i}]: {g} here, {w} in PyTorch"
                );
            }
        }
    }
    assert_eq!(correct(&model), count("eval_test_accuracy_after"), "{name}");
}

#[test]
fn bn_lenet_recalibrates_as_update_bn_does() {
    let model = BnLeNetConfig::new().init(&Device::flex());
    assert_recalibrates_as_pytorch(model, "bn_lenet");
}

#[test]
fn mlp_with_bn_recalibrates_as_update_bn_does() {
    let model = MlpWithBnConfig::new().init(&Device::flex());
    assert_recalibrates_as_pytorch(model, "mlp_with_bn");
}

#[test]
fn the_main_job_recalibrates_after_training_and_reports_both_accuracies() {
    let data = temp_dir("recalibrate-data");
    write_synthetic(&data, 64, 16).unwrap();
    let artifacts = temp_dir("recalibrate-artifacts");
    let flags = ["--epochs", "1", "--batch-size", "16", "--recalibrate", "40"];
    let output = run(command(&data, &artifacts, &flags));
    assert_succeeds(&output);
    assert!(
        text(&output.stdout).contains(
            "recalibrated every BatchNorm over the first 40 training images (batches of 128)"
        ),
        "{}",
        text(&output.stdout)
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join("recalibration.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["images"], 40);
    for key in ["test_accuracy_before", "test_accuracy_after"] {
        let accuracy = json[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{key}: {accuracy}");
    }

    let refused = run(command(
        &data,
        &artifacts,
        &[&flags[..], &["--norm", "none"]].concat(),
    ));
    assert_fails_with(&refused, &["--recalibrate", "--norm none has none"]);
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}
