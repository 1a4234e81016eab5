//! Shared by the conformance tests.
// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

use std::path::Path;

use bn_conformance::{GoldenFile, RunOptions, run_file};
use bn_layers::ComputePath;
use burn::tensor::Device;

/// The precision a device computes in, and what the runner allows for it.
#[derive(Debug, Clone, Copy)]
pub enum Precision {
    /// Within 1e-9.
    F64,
    /// Within 1e-4, or twice PyTorch's own float32 error where a case carries it.
    F32,
}

/// Runs the project's PyTorch golden file (every case of the shared one, plus the NaN and
/// infinity cases, RMSNorm's, the recalibration cases and the half-precision ones) and fails
/// listing every failed case, or when other than `skipped` cases were skipped (half-precision
/// cases in a dtype the device cannot compute in).
pub fn assert_golden_passes(
    device: Device,
    path: ComputePath,
    precision: Precision,
    skipped: usize,
) {
    assert_file_passes("pytorch_golden.json", 92, skipped, device, path, precision);
}

/// Runs the precision cases of `tests/data/precision_golden.json`, written by
/// `scripts/gen_precision_golden.py` (PyTorch 2.15: float64 references and PyTorch's own
/// float32 results on the same float32 inputs).
pub fn assert_precision_cases_pass(device: Device, path: ComputePath, precision: Precision) {
    assert_file_passes("precision_golden.json", 9, 0, device, path, precision);
}

fn assert_file_passes(
    name: &str,
    cases: usize,
    skipped: usize,
    device: Device,
    path: ComputePath,
    precision: Precision,
) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let golden = GoldenFile::load(&file).expect("golden file");
    assert!(golden.cases.len() >= cases, "{name} lost cases");
    let options = RunOptions {
        device,
        path,
        tolerance: match precision {
            Precision::F64 => 1e-9,
            Precision::F32 => 1e-4,
        },
        against_pytorch_f32: matches!(precision, Precision::F32),
    };
    let mut failures = Vec::new();
    let tally = run_file(&golden, &options, |report| {
        if !report.passed() {
            failures.push(report.line());
        }
    });
    assert!(
        tally.failed == 0 && tally.skipped == skipped,
        "{path:?}: {tally}, {} skipped ({skipped} expected):\n{}",
        tally.skipped,
        failures.join("\n")
    );
}
