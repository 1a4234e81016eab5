//! The main job's binary killed with SIGKILL mid-epoch, mid-checkpoint-write and before its
//! first checkpoint, then resumed: every resumed run ends bit for bit where an uninterrupted
//! one does, and a run with nothing to resume says so.
//!
//! Runs `target/<profile>/examples/lenet_fashion_mnist`, which `cargo test` builds.

mod main_job;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use bn_models::{BnLeNet, BnLeNetConfig};
use bn_train::data::write_synthetic;
use bn_train::{Classifier, last_checkpoint};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};
use main_job::*;

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

/// Creates a named pipe at `path` (which must not exist yet) with coreutils' `mkfifo`.
fn make_fifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .output()
        .expect("mkfifo runs");
    assert!(
        made.status.success(),
        "mkfifo {}: {} (did the run write it before the test could?)",
        path.display(),
        text(&made.stderr)
    );
}

/// Opens the FIFO at `path` once a writer does (within 300 s) and reads `bytes` of what it
/// writes; the pipe stays open, so the writer blocks on the rest.
fn read_part_of(path: &Path, bytes: usize) -> (Vec<u8>, File) {
    let (sender, receiver) = channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut fifo = File::open(&path).expect("the FIFO opens");
        let mut written = vec![0; bytes];
        fifo.read_exact(&mut written)
            .expect("the writer sends that much");
        sender.send((written, fifo)).ok();
    });
    receiver
        .recv_timeout(Duration::from_secs(300))
        .expect("the run starts writing epoch 2's model checkpoint within 300 s")
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

    // 2. SIGKILL while epoch 2's model checkpoint is half written. The test stands in for
    // the disk: a FIFO under the temporary file's name, which it stops reading partway, so
    // the write blocks until the kill.
    let artifacts = temp_dir("kill-mid-write");
    let ckpt = artifacts.join("checkpoint");
    let running = Running::start(command(&data, &artifacts, &RECIPE));
    wait_until("epoch 1 is checkpointed", || {
        last_checkpoint(&artifacts) == Some(1)
    });
    let temporary = ckpt.join("model-2.bpk.tmp");
    make_fifo(&temporary);
    let (written, fifo) = read_part_of(&temporary, 16 * 1024);
    assert_eq!(last_checkpoint(&artifacts), Some(1));
    running.kill();
    drop(fifo);
    // What a kill leaves on a real disk: the bytes written so far, under the temporary name.
    std::fs::remove_file(&temporary).unwrap();
    std::fs::write(&temporary, &written).unwrap();
    let full = std::fs::metadata(reference.join("checkpoint/model-2.bpk"))
        .unwrap()
        .len();
    assert!(
        (written.len() as u64) < full,
        "the write was not interrupted: {} of {full} bytes",
        written.len()
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
