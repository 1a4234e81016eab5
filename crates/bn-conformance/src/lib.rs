//! Runs PyTorch golden cases (the format of `scripts/gen_golden.py`) through the
//! layers of `bn-layers` and compares every output, gradient and running statistic: the
//! runner behind the root package's `conformance` example and conformance tests.
//!
//! Each case builds a layer from PyTorch's class name and keyword arguments, loads its
//! parameters and initial running statistics, then runs the steps in order in train or eval
//! mode, carrying the running statistics across steps. A step either produces outputs, checked
//! against `output`, the gradients of `sum(output * upstream)` and the running statistics
//! afterwards, or must fail with the named [`NormError`](bn_layers::NormError) kind. A `recalibrate` step runs
//! [`bn_layers::recalibrate`] (PyTorch's `update_bn`) over its batches and is checked on the
//! running statistics. A half-precision case feeds its inputs in its `dtype`, expects outputs
//! and input gradients in it, and is checked within [`HALF_TOLERANCE`]; where the device
//! cannot compute in that dtype the case is skipped, and says so. Nothing here looks at case
//! names.

pub mod build;
mod compare;
mod golden;
mod step;

pub use compare::{F32_FLOOR, HALF_TOLERANCE};
pub use golden::{
    Case, GoldenFile, HalfDType, Mode, Step, StepResults, TensorValue, cases_missing,
};

use bn_layers::{ComputePath, set_training};
use burn::tensor::{DType, Device};

use compare::{compare, error};
use step::{StepError, host, recalibrate_step, run_step};

/// How to run a golden file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The device to run on; autodiff is added for the gradients.
    pub device: Device,
    /// The compute path of the layers.
    pub path: ComputePath,
    /// Allowed error: `|got - expected| <= tolerance * max(1, |expected|)`.
    pub tolerance: f64,
    /// Where a step carries PyTorch's float32 results, allow each quantity at most twice
    /// PyTorch's own float32 error instead of `tolerance`, or [`F32_FLOOR`] where that is
    /// larger. For float32 runs.
    pub against_pytorch_f32: bool,
}

/// The verdict on one case.
#[derive(Debug)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Every mismatch found; empty when the case passed.
    pub failures: Vec<String>,
    /// Our error next to PyTorch's float32 error, per quantity (precision cases).
    pub notes: Vec<String>,
    /// Why the case did not run, if it did not (a dtype the device cannot compute in).
    pub skipped: Option<String>,
}

impl CaseReport {
    /// Whether the case ran and passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_none()
    }

    /// One line: `ok   name`, `skip name: why` or `FAIL name: first problem (+N more)`.
    pub fn line(&self) -> String {
        if let Some(reason) = &self.skipped {
            return format!("skip {}: {reason}", self.name);
        }
        match self.failures.as_slice() {
            [] if self.notes.is_empty() => format!("ok   {}", self.name),
            [] => format!("ok   {} ({})", self.name, self.notes.join(", ")),
            [only] => format!("FAIL {}: {only}", self.name),
            [first, rest @ ..] => format!("FAIL {}: {first} (+{} more)", self.name, rest.len()),
        }
    }
}

/// How many cases of a file passed, failed and were skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Cases that ran and matched PyTorch.
    pub passed: usize,
    /// Cases that ran and did not.
    pub failed: usize,
    /// Cases in a dtype the device cannot compute in.
    pub skipped: usize,
}

/// `N passed, M failed`, the runner's last line; skipped cases are counted on a line of
/// their own before it.
impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs every case of `file`, calling `report` after each, and counts the verdicts.
pub fn run_file(
    file: &GoldenFile,
    options: &RunOptions,
    mut report: impl FnMut(&CaseReport),
) -> Tally {
    let mut tally = Tally::default();
    for case in &file.cases {
        let verdict = run_case(case, options);
        match (&verdict.skipped, verdict.passed()) {
            (Some(_), _) => tally.skipped += 1,
            (None, true) => tally.passed += 1,
            (None, false) => tally.failed += 1,
        }
        report(&verdict);
    }
    tally
}

/// Runs one case.
pub fn run_case(case: &Case, options: &RunOptions) -> CaseReport {
    let mut report = CaseReport {
        name: case.name.clone(),
        failures: Vec::new(),
        notes: Vec::new(),
        skipped: None,
    };
    if let Some(half) = case.dtype
        && !options.device.supports_dtype(DType::from(half))
    {
        report.skipped = Some(format!("the device cannot compute in {half}"));
        return report;
    }
    report.failures = match check_case(case, options, &mut report.notes) {
        Ok(failures) => failures,
        Err(problem) => vec![problem],
    };
    report
}

fn check_case(
    case: &Case,
    options: &RunOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let device = options.device.clone().autodiff();
    let built = build::build(case, options.path, &device)?;
    let mut layer = match (built, &case.init_error) {
        (Err(err), Some(kind)) if err.kind() == kind => return Ok(Vec::new()),
        (Err(err), _) => return Err(format!("init failed: {err} ({})", err.kind())),
        (Ok(_), Some(kind)) => return Err(format!("init succeeded, expected {kind}")),
        (Ok(layer), None) => layer,
    };
    build::load_initial_state(&mut layer, case, &device)?;
    let half = case.dtype.map(DType::from);
    let tolerance = match half {
        Some(_) => options.tolerance.max(HALF_TOLERANCE),
        None => options.tolerance,
    };

    let mut failures = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let at = |what: &str| format!("step {index} ({:?}) {what}", step.mode);
        let result = match step.mode {
            Mode::Recalibrate => {
                let (recalibrated, refused) =
                    recalibrate_step(layer, step, &device, half).map_err(|problem| at(&problem))?;
                layer = recalibrated;
                refused.map_or(Ok(None), |err| Err(StepError::Norm(err)))
            }
            Mode::Train | Mode::Eval => {
                layer = set_training(layer, step.mode == Mode::Train);
                run_step(&layer, step, &device, half).map(Some)
            }
        };
        let got = match (result, &step.error) {
            (Err(StepError::Norm(err)), Some(kind)) if err.kind() == kind => continue,
            (Err(StepError::Norm(err)), _) => {
                failures.push(at(&format!("failed: {err} ({})", err.kind())));
                continue;
            }
            (Err(StepError::Case(problem)), _) => return Err(at(&problem)),
            (Ok(_), Some(kind)) => {
                failures.push(at(&format!("accepted, expected {kind}")));
                continue;
            }
            (Ok(got), None) => got,
        };
        let pytorch_f32 = step
            .float32
            .as_ref()
            .filter(|_| options.against_pytorch_f32);
        let mut check = |what: &str, got: Option<&[f64]>| {
            let want = step.expected.get(what);
            let yardstick = pytorch_f32.and_then(|f32| f32.get(what));
            let problem = match (got, want, yardstick) {
                (Some(got), Some(want), Some(torch)) if got.len() == want.data.len() => {
                    let (ours, theirs) = (error(got, &want.data), error(&torch.data, &want.data));
                    notes.push(format!("{index}.{what} {ours:.1e}/{theirs:.1e}"));
                    let allowed = f64::max(2.0 * theirs, F32_FLOOR);
                    (ours > allowed).then(|| {
                        format!("error {ours:.2e} > 2 × PyTorch's float32 error {theirs:.2e}")
                    })
                }
                _ => compare(got, want, tolerance),
            };
            problem.map(|problem| at(&format!("{what}: {problem}")))
        };
        if let Some(got) = got {
            let (gamma, beta) = build::params(&layer);
            let checks = [
                check("output", Some(&got.output)),
                check("grad_input", Some(&got.grad_input)),
                check("grad_weight", gamma.and(got.grad_weight.as_deref())),
                check("grad_bias", beta.and(got.grad_bias.as_deref())),
            ];
            failures.extend(checks.into_iter().flatten());
            if let Some(half) = half
                && got.dtype != half
            {
                failures.push(at(&format!("output is {:?}, expected {half:?}", got.dtype)));
            }
        }
        let (mean, var, count) = build::running_state(&layer);
        let checks = [
            check("running_mean", mean.map(host).as_deref()),
            check("running_var", var.map(host).as_deref()),
        ];
        failures.extend(checks.into_iter().flatten());
        if count != step.num_batches_tracked {
            failures.push(at(&format!(
                "num_batches_tracked: got {count:?}, expected {:?}",
                step.num_batches_tracked
            )));
        }
    }
    Ok(failures)
}
