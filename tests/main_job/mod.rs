//! Shared by the tests that run the main job's binary (`main_job_*.rs`): where it is, how to
//! call it, and how to check how it ended.
// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example binary beside this test binary (`target/release/deps/main_job_*-*`).
pub fn example() -> PathBuf {
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

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-main-job-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example with `--backend flex --data-dir DATA --artifact-dir ARTIFACTS` and `extra`.
pub fn command(data: &Path, artifacts: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(example());
    command
        .args(["--backend", "flex", "--data-dir"])
        .arg(data)
        .arg("--artifact-dir")
        .arg(artifacts)
        .args(extra)
        .env("RUST_BACKTRACE", "1");
    command
}

pub fn run(mut command: Command) -> Output {
    command.output().expect("the example starts")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the run failed cleanly: non-zero exit, `expected` in stderr, no panic.
pub fn assert_fails_with(output: &Output, expected: &[&str]) {
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

pub fn assert_succeeds(output: &Output) {
    assert!(
        output.status.success(),
        "failed:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}
