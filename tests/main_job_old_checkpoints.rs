//! Checkpoints written by version 0.1 of this workspace, before the running statistics became
//! one submodule and `Norm::Ours` became `Norm::Batch`: the model record loads with every
//! value in its new place, and the main job's `--resume` continues such a run to the
//! uninterrupted run's result.
//!
//! Runs `target/<profile>/examples/lenet_fashion_mnist`, which `cargo test` builds.

mod main_job;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bn_models::{BnLeNetConfig, Norm};
use bn_train::Classifier;
use burn::module::Module;
use burn::tensor::{Device, TensorData};
use main_job::*;

/// The checkpoint written by version 0.1 (`tests/data/checkpoint-0.1/README.md`).
fn version_0_1_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint-0.1")
}

/// Copies every file under `from` (the fixture's README too) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every tensor of a burnpack file by name, read without any model: the record as written.
fn raw_tensors(path: &Path) -> HashMap<String, TensorData> {
    let reader = burn::store::burn_pack::Reader::from_file(path).unwrap();
    (reader.into_tensors().unwrap().into_iter())
        .map(|t| {
            let (name, dtype, shape, _, bytes) = t.into_parts().unwrap();
            (name, TensorData::from_bytes(bytes, shape, dtype))
        })
        .collect()
}

#[test]
fn a_version_0_1_model_record_loads_with_every_value_in_its_new_place() {
    let path = version_0_1_checkpoint().join("checkpoint/model-1.bpk");
    let model = Classifier::new(BnLeNetConfig::new().init(&Device::flex()));
    // Burn alone refuses it: the paths of the running statistics and of `Norm`'s variant moved.
    let refused = model.clone().try_load_file(&path).unwrap_err().to_string();
    assert!(
        refused.contains("model.norm1.Batch.running.mean"),
        "{refused}"
    );

    let (record, renamed) = bn_models::record::load_record(&model, &path).unwrap();
    // Four norm layers, each with gamma, beta, running_mean, running_var, num_batches_tracked.
    assert_eq!(renamed, 20);
    let model = model.try_load_record(record).unwrap();
    let raw = raw_tensors(&path);
    let Some(Norm::Batch(norm1)) = &model.model.norm1 else {
        panic!("BN-LeNet's first norm is a BatchNorm")
    };
    let (mean, var) = norm1.running_stats().unwrap();
    let gamma = norm1.gamma.as_ref().unwrap().val();
    for (loaded, old) in [
        (mean, "running_mean"),
        (var, "running_var"),
        (gamma, "gamma"),
    ] {
        let old = &raw[&format!("model.norm1.Ours.{old}")];
        assert_eq!(
            loaded.into_data().try_to_vec::<f32>(),
            old.try_to_vec::<f32>()
        );
    }
    // 512 images in batches of 64: 8 training batches in epoch 1.
    let count: Vec<i64> = raw["model.norm1.Ours.num_batches_tracked"].iter().collect();
    assert_eq!((norm1.num_batches_tracked(), count), (Some(8), vec![8]));
}

#[test]
fn a_version_0_1_checkpoint_resumes_to_its_uninterrupted_result() {
    let data = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(
        data.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
    );
    let artifacts = temp_dir("checkpoint-0.1");
    copy_dir(&version_0_1_checkpoint(), &artifacts);
    let recipe = [
        "--epochs",
        "2",
        "--limit-train",
        "512",
        "--limit-test",
        "256",
    ];
    let resumed = run(command(
        data,
        &artifacts,
        &[&recipe[..], &["--batch-size", "64", "--resume"]].concat(),
    ));
    assert_succeeds(&resumed);
    assert!(text(&resumed.stdout).contains("written by version 0.1; 20 tensors renamed"));
    // Every epoch as the uninterrupted version-0.1 run measured it (its metrics.csv, kept in
    // the fixture): the same on the machine that wrote it, within a last digit and one test
    // image on another CPU's SIMD.
    let metrics = |dir: &Path| -> Vec<Vec<f64>> {
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        let rows = csv.lines().skip(1);
        rows.map(|row| row.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let (expected, got) = (metrics(&version_0_1_checkpoint()), metrics(&artifacts));
    assert_eq!(expected.len(), 2);
    assert_eq!(got.len(), 2, "{got:?}");
    for (e, g) in expected.iter().flatten().zip(got.iter().flatten()) {
        assert!(
            (e - g).abs() <= 1.0 / 256.0 + 1e-6,
            "{got:?}, uninterrupted {expected:?}"
        );
    }
    // The old model record was rewritten in today's layout, which Burn loads directly.
    Classifier::new(BnLeNetConfig::new().init(&Device::flex()))
        .try_load_file(artifacts.join("checkpoint/model-1.bpk"))
        .unwrap();
    std::fs::remove_dir_all(artifacts).ok();
}
