//! Runs a PyTorch golden file through the layers of `bn-layers`.
//!
//! ```text
//! cargo run --release --example conformance -- tests/data/pytorch_golden.json --dtype f64
//! ```
//!
//! Prints the backend and device, one line per case, `K skipped` where half-precision cases
//! are in a dtype the device cannot compute in, and last `N passed, M failed`; exits with
//! status 1 if any case failed.
//!
//! With `--holds-cases-of OTHER` it runs nothing and checks that the file holds every case
//! of the golden file `OTHER` unchanged (CI: the project's file against the shared one).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bn_conformance::{GoldenFile, RunOptions, cases_missing, run_file};
use bn_layers::ComputePath;
use burn::tensor::FloatDType;
use burn_batchnorm::BackendKind;
use clap::{Parser, ValueEnum};

/// Check the normalization layers against PyTorch's golden vectors.
#[derive(Parser, Debug)]
struct Args {
    /// A golden JSON file in the format of scripts/gen_golden.py.
    file: PathBuf,
    /// Float precision: f64 where the backend supports it (tolerance 1e-9), f32 otherwise
    /// (tolerance 1e-4; where a case carries PyTorch's float32 results, at most twice
    /// PyTorch's float32 error).
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    dtype: Precision,
    /// The backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// BatchNorm/LayerNorm/GroupNorm/InstanceNorm compute path.
    #[arg(long, value_enum, default_value_t = PathArg::Fused)]
    path: PathArg,
    /// Run nothing: check that the file holds every case of this golden file unchanged.
    #[arg(long, value_name = "OTHER")]
    holds_cases_of: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Precision {
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PathArg {
    Fused,
    Composed,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(other) = &args.holds_cases_of {
        return holds_cases_of(&args.file, other);
    }
    let backend = args.backend.unwrap_or_else(BackendKind::from_features);
    let mut device = match backend.device() {
        Ok(device) => device,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let want_f64 = args.dtype == Precision::F64;
    let f64_ok = want_f64 && device.supports_dtype(burn::tensor::DType::F64);
    if f64_ok && let Err(err) = device.configure(FloatDType::F64) {
        eprintln!("error: cannot switch {backend} to f64: {err:?}");
        return ExitCode::from(2);
    }
    let (dtype, tolerance) = if f64_ok { ("f64", 1e-9) } else { ("f32", 1e-4) };
    println!(
        "backend: {backend}, device: {device:?}, dtype: {dtype}, path: {:?}",
        args.path
    );
    if want_f64 && !f64_ok {
        println!("note: {backend} has no f64 on this device; running in f32");
    }

    let file = match GoldenFile::load(&args.file) {
        Ok(file) => file,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let options = RunOptions {
        device,
        path: match args.path {
            PathArg::Fused => ComputePath::Fused,
            PathArg::Composed => ComputePath::Composed,
        },
        tolerance,
        against_pytorch_f32: dtype == "f32",
    };
    let tally = run_file(&file, &options, |report| println!("{}", report.line()));
    if tally.skipped > 0 {
        println!(
            "{} skipped: half-precision cases in a dtype this device cannot compute in",
            tally.skipped
        );
    }
    println!("{tally}");
    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn holds_cases_of(file: &Path, other: &Path) -> ExitCode {
    match cases_missing(file, other) {
        Err(problem) => {
            eprintln!("error: {problem}");
            ExitCode::from(2)
        }
        Ok(missing) if missing.is_empty() => {
            println!("{} holds every case of {}", file.display(), other.display());
            ExitCode::SUCCESS
        }
        Ok(missing) => {
            println!(
                "{} lacks or changed {} case(s) of {}: {}",
                file.display(),
                missing.len(),
                other.display(),
                missing.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}
