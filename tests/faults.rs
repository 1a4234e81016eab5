//! The main job's binary under faults: killed with SIGKILL mid-epoch, mid-checkpoint-write and
//! before its first checkpoint, then resumed; fed corrupt data and corrupt checkpoints, and
//! checkpoints in version 0.1's record layout; given bad flags; driven to a NaN loss. Every case ends with a clear message, a non-zero exit and
//! no panic, and a resumed run ends exactly where an uninterrupted one does.
//!
//! Runs `target/<profile>/examples/lenet_fashion_mnist`, which `cargo test` builds.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use bn_models::{BnLeNet, BnLeNetConfig, Norm};
use bn_train::data::{Split, encode_idx, write_synthetic};
use bn_train::{Classifier, PAUSE_ENV, last_checkpoint};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// The example binary beside this test binary (`target/release/deps/faults-*`).
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap();
    let path = path.join("examples").join("lenet_fashion_mnist");
    assert!(
        path.is_file(),
        "{} is missing: run the whole test suite (`cargo test --release`), which builds the \
         examples, or `cargo build --release --examples` first",
        path.display()
    );
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-faults-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example with `--backend flex --data-dir DATA --artifact-dir ARTIFACTS` and `extra`.
fn command(data: &Path, artifacts: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(example());
    command
        .args(["--backend", "flex", "--data-dir"])
        .arg(data)
        .arg("--artifact-dir")
        .arg(artifacts)
        .args(extra)
        .env_remove(PAUSE_ENV)
        .env("RUST_BACKTRACE", "1");
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("the example starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the run failed cleanly: non-zero exit, `expected` in stderr, no panic.
fn assert_fails_with(output: &Output, expected: &[&str]) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "succeeded; stderr: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in stderr:\n{stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "panicked:\n{stderr}"
    );
}

fn assert_succeeds(output: &Output) {
    assert!(
        output.status.success(),
        "failed:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A running example whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a line starting with `prefix`.
    fn wait_for_line(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) if line.starts_with(prefix) => return,
                Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("the run ended before printing {prefix:?}"),
            }
        }
        panic!("no line starting with {prefix:?} within 300 s");
    }

    /// SIGKILL, and reap the process.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the run had already finished");
    }
}

/// Polls `condition` every 2 ms for up to 300 s.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every float and integer tensor of the model in `checkpoint`, in order.
fn checkpoint_values(checkpoint: &Path) -> (Vec<f32>, Vec<i64>) {
    #[derive(Default)]
    struct Collect(Vec<f32>, Vec<i64>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            self.1.extend(param.val().into_data().iter::<i64>());
        }
    }
    let model: Classifier<BnLeNet> = Classifier::new(BnLeNetConfig::new().init(&Device::flex()));
    let model = model.load_file(checkpoint);
    let mut all = Collect::default();
    model.visit(&mut all);
    (all.0, all.1)
}

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

/// The recipe of the kill tests: 3 epochs of 2,400 images in batches of 32.
const EPOCHS: &str = "3";
const RECIPE: [&str; 6] = ["--epochs", EPOCHS, "--batch-size", "32", "--seed", "5"];

/// Asserts `resumed` ended bit for bit where `reference` did: final parameters, running
/// statistics, batch counters and every epoch's metrics.
fn assert_same_run(reference: &Path, resumed: &Path) {
    let last = format!("checkpoint/model-{EPOCHS}.bpk");
    let (floats, ints) = checkpoint_values(&reference.join(&last));
    let (resumed_floats, resumed_ints) = checkpoint_values(&resumed.join(&last));
    assert_eq!(ints, resumed_ints, "num_batches_tracked differ");
    let differing = floats
        .iter()
        .zip(&resumed_floats)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} values differ",
        floats.len()
    );
    let csv = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv(reference), csv(resumed));
}

/// `--resume` in `artifacts` succeeds and ends bit for bit where `reference` did.
fn resume_to_the_reference(data: &Path, artifacts: &Path, reference: &Path) {
    let resumed = run(command(
        data,
        artifacts,
        &[&RECIPE[..], &["--resume"]].concat(),
    ));
    assert_succeeds(&resumed);
    assert_same_run(reference, artifacts);
}

#[test]
fn killed_runs_resume_to_exactly_the_uninterrupted_result() {
    let data = temp_dir("kill-data");
    write_synthetic(&data, 2400, 200).unwrap();
    let reference = temp_dir("kill-reference");
    assert_succeeds(&run(command(&data, &reference, &RECIPE)));

    // 1. SIGKILL in the middle of epoch 2, after epoch 1's checkpoint is on disk.
    let artifacts = temp_dir("kill-mid-epoch");
    let running = Running::start(command(&data, &artifacts, &RECIPE));
    running.wait_for_line("epoch 2/3 train");
    wait_until("epoch 1 is checkpointed", || {
        last_checkpoint(&artifacts) == Some(1)
    });
    running.kill();
    resume_to_the_reference(&data, &artifacts, &reference);

    // 2. SIGKILL while epoch 2's model checkpoint is half written.
    let artifacts = temp_dir("kill-mid-write");
    let ckpt = artifacts.join("checkpoint");
    let mut slow = command(&data, &artifacts, &RECIPE);
    slow.env(PAUSE_ENV, "2000");
    let running = Running::start(slow);
    wait_until("epoch 2's model checkpoint is being written", || {
        ckpt.join("model-2.bpk.tmp").is_file() && last_checkpoint(&artifacts) == Some(1)
    });
    running.kill();
    let full = std::fs::metadata(reference.join("checkpoint/model-3.bpk"))
        .unwrap()
        .len();
    let partial = std::fs::metadata(ckpt.join("model-2.bpk.tmp"))
        .unwrap()
        .len();
    assert!(
        partial < full,
        "the write was not interrupted: {partial} of {full} bytes"
    );
    assert!(!ckpt.join("model-2.bpk").exists());
    assert_eq!(last_checkpoint(&artifacts), Some(1));
    resume_to_the_reference(&data, &artifacts, &reference);

    // 3. SIGKILL in epoch 1: nothing to resume, and the run says so.
    let artifacts = temp_dir("kill-first-epoch");
    let running = Running::start(command(&data, &artifacts, &RECIPE));
    running.wait_for_line("epoch 1/3 train");
    running.kill();
    assert_eq!(last_checkpoint(&artifacts), None);
    let resumed = run(command(
        &data,
        &artifacts,
        &[&RECIPE[..], &["--resume"]].concat(),
    ));
    assert_fails_with(&resumed, &["cannot resume: no checkpoint in"]);

    for dir in [data, reference] {
        std::fs::remove_dir_all(dir).ok();
    }
}

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
    let cases: [(&[&str], &str); 8] = [
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
fn data_parallel_flag_combinations_that_cannot_work_are_refused() {
    let data = temp_dir("dp-data");
    write_synthetic(&data, 64, 16).unwrap();
    let artifacts = temp_dir("dp-artifacts");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--devices", "2", "--resume"],
            "--resume continues from checkpoints",
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
    for dir in [data, artifacts] {
        std::fs::remove_dir_all(dir).ok();
    }
}
