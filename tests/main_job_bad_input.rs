//! The main job's binary given bad input: corrupt data files, corrupt or foreign checkpoints
//! at `--resume`, bad flags, flag combinations that cannot work, a learning rate that drives
//! the loss to NaN. Every case ends with a clear message naming the problem, a non-zero exit
//! and no panic.
//!
//! Runs `target/<profile>/examples/lenet_fashion_mnist`, which `cargo test` builds.

mod main_job;

use std::path::{Path, PathBuf};
use std::process::Command;

use bn_train::data::{Split, encode_idx, write_synthetic};
use bn_train::last_checkpoint;
use main_job::*;

/// Writes the synthetic data set to a fresh directory and lets `damage` spoil it.
fn spoiled(name: &str, damage: impl FnOnce(&Path)) -> PathBuf {
    let dir = temp_dir(name);
    write_synthetic(&dir, 64, 16).unwrap();
    damage(&dir);
    dir
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn corrupt_data_files_each_get_their_own_error_naming_the_file() {
    let [images, labels] = Split::Train.file_names();
    let artifacts = temp_dir("corrupt-artifacts");
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        (
            "truncated gzip",
            spoiled("truncated-gz", |dir| {
                let path = dir.join(&images);
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            }),
            vec![images.as_str(), "not a valid gzip stream"],
        ),
        (
            "wrong magic number",
            spoiled("magic", |dir| {
                let mut file = encode_idx(&[64, 28, 28], &vec![0; 64 * 784]);
                file[2] = 0x0d; // float data
                std::fs::write(dir.join(&images), gz(&file)).unwrap();
            }),
            vec![images.as_str(), "magic number 00000d03"],
        ),
        (
            "wrong image dimensions",
            spoiled("dims", |dir| {
                let file = encode_idx(&[64, 27, 28], &vec![0; 64 * 27 * 28]);
                std::fs::write(dir.join(&images), gz(&file)).unwrap();
            }),
            vec![images.as_str(), "images are [27, 28], expected 28×28"],
        ),
        (
            "label outside 0-9",
            spoiled("label", |dir| {
                let mut values: Vec<u8> = (0..64).map(|i| i % 10).collect();
                values[17] = 12;
                std::fs::write(dir.join(&labels), gz(&encode_idx(&[64], &values))).unwrap();
            }),
            vec![labels.as_str(), "label 12 at index 17 is not a class 0-9"],
        ),
        (
            "image and label counts differ",
            spoiled("count", |dir| {
                let values: Vec<u8> = (0..63).map(|i| i % 10).collect();
                std::fs::write(dir.join(&labels), gz(&encode_idx(&[63], &values))).unwrap();
            }),
            vec![images.as_str(), "holds 64 images but", "holds 63 labels"],
        ),
        (
            "missing file",
            spoiled("missing", |dir| {
                std::fs::remove_file(dir.join(&labels)).unwrap()
            }),
            vec!["lacks train-labels-idx1-ubyte.gz: Fashion-MNIST needs all four"],
        ),
    ];
    for (case, data, expected) in cases {
        let output = run(command(&data, &artifacts, &["--epochs", "1"]));
        println!("{case}: {}", text(&output.stderr).trim());
        assert_fails_with(&output, &expected);
        std::fs::remove_dir_all(data).ok();
    }
}

#[test]
fn corrupt_or_foreign_checkpoints_are_refused_by_resume() {
    let data = temp_dir("ckpt-data");
    write_synthetic(&data, 64, 16).unwrap();
    let one_epoch = ["--epochs", "1", "--batch-size", "16"];
    let resume = ["--epochs", "2", "--batch-size", "16", "--resume"];
    let ours = temp_dir("ckpt-ours");
    assert_succeeds(&run(command(&data, &ours, &one_epoch)));
    let plain = temp_dir("ckpt-plain");
    let plain_flags = [&one_epoch[..], &["--norm", "none"]].concat();
    assert_succeeds(&run(command(&data, &plain, &plain_flags)));
    let ckpt = ours.join("checkpoint");
    let model = ckpt.join("model-1.bpk");
    let optim = ckpt.join("optim-1.bpk");
    let good_model = std::fs::read(&model).unwrap();
    let good_optim = std::fs::read(&optim).unwrap();

    std::fs::write(&model, b"not a checkpoint").unwrap();
    let output = run(command(&data, &ours, &resume));
    assert_fails_with(&output, &["model-1.bpk is not a readable checkpoint"]);

    std::fs::copy(plain.join("checkpoint/model-1.bpk"), &model).unwrap();
    let output = run(command(&data, &ours, &resume));
    assert_fails_with(&output, &["model-1.bpk does not fit this model", "norm1"]);

    std::fs::write(&model, &good_model).unwrap();
    std::fs::write(&optim, &good_optim[..good_optim.len() / 2]).unwrap();
    let output = run(command(&data, &ours, &resume));
    assert_fails_with(&output, &["optim-1.bpk is not a readable checkpoint"]);

    std::fs::write(ours.join("config.json"), b"{ truncated").unwrap();
    let output = run(command(&data, &ours, &resume));
    assert_fails_with(&output, &["cannot resume: no readable", "config.json"]);

    for dir in [data, ours, plain] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn a_nan_loss_stops_the_run_naming_epoch_and_batch() {
    let data = temp_dir("nan-data");
    write_synthetic(&data, 256, 32).unwrap();
    let artifacts = temp_dir("nan-artifacts");
    // BN-LeNet survives --lr 1e6 (and even 1e30) with a finite loss; a rate that overflows
    // f32 parameters to infinity makes the second batch's loss NaN.
    let output = run(command(
        &data,
        &artifacts,
        &["--epochs", "2", "--lr", "1e40", "--batch-size", "32"],
    ));
    assert_fails_with(
        &output,
        &[
            "training diverged: the loss is NaN at epoch 1, batch 2",
            "no checkpoint",
        ],
    );
    // The last progress line says where training stopped: after 2 of the 8 batches.
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("epoch 1/2 train  25% (64/256), stopped"),
        "no stop line in stdout:\n{stdout}"
    );
    assert!(!stdout.contains("train 100%"), "stdout:\n{stdout}");
    assert_eq!(last_checkpoint(&artifacts), None);
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn bad_flags_get_clap_errors_naming_the_flag() {
    let data = temp_dir("flags-data");
    let file = data.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let artifacts = temp_dir("flags-artifacts");
    let file = file.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["--batch-size", "0"],
            "invalid value '0' for '--batch-size <BATCH_SIZE>': must be at least 2",
        ),
        (
            &["--epochs", "0"],
            "invalid value '0' for '--epochs <EPOCHS>': must be at least 1",
        ),
        (
            &["--lr", "-0.1"],
            "invalid value '-0.1' for '--lr <LR>': must be positive and finite",
        ),
        (
            &["--lr", "NaN"],
            "invalid value 'NaN' for '--lr <LR>': must be positive and finite",
        ),
        (
            &["--momentum", "1.5"],
            "invalid value '1.5' for '--momentum <MOMENTUM>'",
        ),
        (
            &["--norm", "batchy"],
            "invalid value 'batchy' for '--norm <NORM>'",
        ),
        (
            &["--optimizer", "rmsprop"],
            "invalid value 'rmsprop' for '--optimizer <OPTIMIZER>': unknown optimizer 'rmsprop', \
             expected one of: sgd, adam",
        ),
        (
            &["--recalibrate", "1"],
            "invalid value '1' for '--recalibrate <N>': must be at least 2",
        ),
        (
            &["--data-dir", file],
            "for '--data-dir <DATA_DIR>': is a file, not a directory",
        ),
    ];
    for (flags, expected) in cases {
        let mut command = Command::new(example());
        command
            .args(["--backend", "flex", "--artifact-dir"])
            .arg(&artifacts)
            .args(flags);
        let output = run(command);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        assert_fails_with(&output, &["error: ", expected]);
    }
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn download_refuses_a_file_on_disk_that_is_not_the_published_one() {
    let data = temp_dir("download-data");
    let [images, _] = Split::Train.file_names();
    std::fs::write(data.join(&images), b"not Fashion-MNIST").unwrap();
    let artifacts = temp_dir("download-artifacts");
    let output = run(command(&data, &artifacts, &["--download"]));
    assert_fails_with(
        &output,
        &[images.as_str(), "is not the published file", "move it away"],
    );
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn data_parallel_flag_combinations_that_cannot_work_are_refused() {
    let data = temp_dir("dp-data");
    write_synthetic(&data, 64, 16).unwrap();
    let artifacts = temp_dir("dp-artifacts");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--devices", "2", "--batch-size", "3"],
            "--devices 2 with --batch-size 3: every replica needs a slice of at least 2 images",
        ),
        (
            &["--sync-bn", "--norm", "group"],
            "--norm group has nothing to synchronize",
        ),
        (
            &["--devices", "0"],
            "invalid value '0' for '--devices <DEVICES>'",
        ),
    ];
    for (flags, expected) in cases {
        let output = run(command(&data, &artifacts, flags));
        assert_fails_with(&output, &[expected]);
    }
    let output = run(command(
        &data,
        &artifacts,
        &[
            "--devices",
            "2",
            "--sync-bn",
            "--epochs",
            "1",
            "--batch-size",
            "16",
        ],
    ));
    assert_succeeds(&output);
    assert!(text(&output.stdout).contains("2 replicas with SyncBatchNorm: test accuracy"));
    // Data-parallel runs checkpoint like single-device ones; config.json records the replicas,
    // so a resume on one device is refused and one on the same replicas continues.
    let resume = |devices: &[&str]| {
        let mut flags = vec!["--epochs", "2", "--batch-size", "16", "--resume"];
        flags.extend_from_slice(devices);
        run(command(&data, &artifacts, &flags))
    };
    assert_fails_with(
        &resume(&[]),
        &[
            "the flags differ from the recipe",
            "\"devices\": 2",
            "\"sync_bn\": true",
        ],
    );
    let output = resume(&["--devices", "2", "--sync-bn"]);
    assert_succeeds(&output);
    assert!(text(&output.stdout).contains("epoch 2/2 | train loss"));
    assert_eq!(last_checkpoint(&artifacts), Some(2));
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}
