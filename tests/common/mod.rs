//! Shared by the conformance tests.

use std::path::Path;

use bn_layers::ComputePath;
use burn::tensor::Device;
use burn_batchnorm::conformance::{GoldenFile, RunOptions, run_file};

/// Runs the project's copy of the PyTorch golden file and fails listing every failed case.
pub fn assert_golden_passes(device: Device, path: ComputePath, tolerance: f64) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pytorch_golden.json");
    let golden = GoldenFile::load(&file).expect("golden file");
    assert!(golden.cases.len() >= 61, "the golden file lost cases");
    let options = RunOptions {
        device,
        path,
        tolerance,
    };
    let mut failures = Vec::new();
    let (passed, failed) = run_file(&golden, &options, |report| {
        if !report.passed() {
            failures.push(report.line());
        }
    });
    assert_eq!(
        failed,
        0,
        "{path:?}: {passed} passed, {failed} failed:\n{}",
        failures.join("\n")
    );
}
