//! Runs PyTorch golden cases (the format of `scripts/gen_golden.py`) through the
//! layers of `bn-layers` and compares every output, gradient and running statistic: the
//! runner behind the root package's `conformance` example and conformance tests.
//!
//! Each case builds a layer from PyTorch's class name and keyword arguments, loads its
//! parameters and initial running statistics, then runs the steps in order in train or eval
//! mode, carrying the running statistics across steps. A step either produces outputs, checked
//! against `output`, the gradients of `sum(output * upstream)` and the running statistics
//! afterwards, or must fail with the named [`NormError`] kind. A `recalibrate` step runs
//! [`bn_layers::recalibrate`] (PyTorch's `update_bn`) over its batches and is checked on the
//! running statistics. A half-precision case feeds its inputs in its `dtype`, expects outputs
//! and input gradients in it, and is checked within [`HALF_TOLERANCE`]; where the device
//! cannot compute in that dtype the case is skipped, and says so. Nothing here looks at case
//! names.

pub mod build;
mod golden;

pub use golden::{
    Case, GoldenFile, HalfDType, Mode, Step, StepResults, TensorValue, cases_missing,
};

use bn_layers::{ComputePath, NormError, recalibrate, set_training};
use bn_models::Norm;
use burn::tensor::{DType, Device, Tensor, TensorData};

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

/// Error of a quantity: the largest [`element_error`] over its values.
fn error(got: &[f64], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| element_error(g, w))
        .fold(0.0, f64::max)
}

/// `|got - want| / max(1, |want|)` between finite values. A NaN matches a NaN and an
/// infinity the same infinity (error 0); any other pairing with a non-finite value is an
/// infinite error, so a NaN where PyTorch has a number fails, and so does a number where
/// PyTorch has a NaN.
fn element_error(got: f64, want: f64) -> f64 {
    if got.is_finite() && want.is_finite() {
        (got - want).abs() / want.abs().max(1.0)
    } else if (got.is_nan() && want.is_nan()) || got == want {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The smallest float32 allowance, 2^-16 (128 units in the last place of an f32 at 1).
/// PyTorch accumulates its CPU sums in f64 and lands within half a unit; a sum of a few
/// thousand f32 values in f32 (Burn's reductions, which the composed path and the backends
/// without a kernel use) is good to tens of units. Below this an error is rounding; the
/// precision cases are about cancellation, where errors run to 1e-4 and beyond.
pub const F32_FLOOR: f64 = 128.0 * f32::EPSILON as f64;

/// The allowed error of a half-precision case, relative as [`RunOptions::tolerance`]:
/// bfloat16 carries 8 significant bits, so PyTorch's output and ours, both rounded from f32
/// arithmetic, can land a unit in the last place apart (2^-7 relative).
pub const HALF_TOLERANCE: f64 = 1e-2;

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

enum StepError {
    /// The layer refused the input.
    Norm(NormError),
    /// The step itself is malformed or unsupported.
    Case(String),
}

struct StepOutputs {
    output: Vec<f64>,
    /// The output's dtype: the input's, for a half-precision case.
    dtype: DType,
    grad_input: Vec<f64>,
    grad_weight: Option<Vec<f64>>,
    grad_bias: Option<Vec<f64>>,
}

/// A tensor of the case's values on `device`, in `dtype` or the device's default float.
fn tensor<const D: usize>(value: &TensorValue, device: &Device, dtype: Option<DType>) -> Tensor<D> {
    let data = TensorData::new(value.data.clone(), value.shape.clone());
    match dtype {
        Some(dtype) => Tensor::from_data(data, (device, dtype)),
        None => Tensor::from_data(data, device),
    }
}

/// The rank of a step's tensors, as a const generic: `$run::<D>($($args),*)`.
macro_rules! by_rank {
    ($rank:expr, $run:ident($($args:expr),*)) => {
        match $rank {
            1 => $run::<1>($($args),*),
            2 => $run::<2>($($args),*),
            3 => $run::<3>($($args),*),
            4 => $run::<4>($($args),*),
            5 => $run::<5>($($args),*),
            6 => $run::<6>($($args),*),
            rank => Err(format!("rank {rank} inputs are not supported (1 to 6)").into()),
        }
    };
}

impl From<String> for StepError {
    fn from(problem: String) -> Self {
        StepError::Case(problem)
    }
}

fn run_step(
    layer: &Norm,
    step: &Step,
    device: &Device,
    half: Option<DType>,
) -> Result<StepOutputs, StepError> {
    let input = step
        .input
        .as_ref()
        .ok_or_else(|| format!("a {:?} step needs an input", step.mode))?;
    input.validate("input")?;
    by_rank!(
        input.shape.len(),
        run_ranked(layer, input, step.upstream.as_ref(), device, half)
    )
}

fn run_ranked<const D: usize>(
    layer: &Norm,
    input: &TensorValue,
    upstream: Option<&TensorValue>,
    device: &Device,
    half: Option<DType>,
) -> Result<StepOutputs, StepError> {
    let x = tensor::<D>(input, device, half).require_grad();
    let y = layer.try_forward(x.clone()).map_err(StepError::Norm)?;
    let upstream = match upstream {
        Some(upstream) => {
            upstream.validate("upstream")?;
            if upstream.shape != input.shape {
                return Err(StepError::Case("upstream and input shapes differ".into()));
            }
            tensor(upstream, device, None)
        }
        None => Tensor::ones(y.dims(), device),
    };
    // PyTorch's `sum(output.float() * upstream.float())` for a half output.
    let dtype = y.dtype();
    let widened = match dtype == upstream.dtype() {
        true => y.clone(),
        false => y.clone().cast(upstream.dtype()),
    };
    let grads = (widened * upstream).sum().backward();
    let (gamma, beta) = build::params(layer);
    let numel = input.data.len();
    Ok(StepOutputs {
        output: host(y),
        dtype,
        grad_input: x.grad(&grads).map(host).unwrap_or_else(|| vec![0.0; numel]),
        grad_weight: gamma.and_then(|p| p.grad(&grads)).map(host),
        grad_bias: beta.and_then(|p| p.grad(&grads)).map(host),
    })
}

/// [`recalibrate`] over the step's batches: the layer afterwards, and the first error a
/// forward raised, if one did. The error is a problem with the step itself (no batches,
/// mixed ranks).
fn recalibrate_step(
    layer: Norm,
    step: &Step,
    device: &Device,
    half: Option<DType>,
) -> Result<(Norm, Option<NormError>), String> {
    let rank = match step.batches.as_slice() {
        [] => return Err("a recalibrate step needs batches".into()),
        [first, ..] => first.shape.len(),
    };
    for batch in &step.batches {
        batch.validate("batch")?;
        if batch.shape.len() != rank {
            return Err("a recalibrate step's batches differ in rank".into());
        }
    }
    by_rank!(rank, recalibrate_ranked(layer, &step.batches, device, half))
}

fn recalibrate_ranked<const D: usize>(
    layer: Norm,
    batches: &[TensorValue],
    device: &Device,
    half: Option<DType>,
) -> Result<(Norm, Option<NormError>), String> {
    let mut refused = None;
    let layer = recalibrate(layer, batches, |layer: &Norm, batch| {
        if refused.is_none()
            && let Err(err) = layer.try_forward(tensor::<D>(batch, device, half))
        {
            refused = Some(err);
        }
    });
    Ok((layer, refused))
}

/// A tensor's values on the host, as f64 (half values widened exactly).
fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    let tensor = match tensor.dtype() {
        DType::F16 | DType::BF16 => tensor.cast(DType::F32),
        _ => tensor,
    };
    tensor.into_data().iter::<f64>().collect()
}

/// `None` when `got` matches `want` within tolerance, else what is wrong.
fn compare(got: Option<&[f64]>, want: Option<&TensorValue>, tolerance: f64) -> Option<String> {
    let (got, want) = match (got, want) {
        (None, None) => return None,
        (Some(_), None) => return Some("the layer has a value, PyTorch has none".into()),
        (None, Some(_)) => return Some("missing: PyTorch has a value, the layer none".into()),
        (Some(got), Some(want)) => (got, want),
    };
    if got.len() != want.data.len() {
        return Some(format!(
            "{} values, expected {} (shape {:?})",
            got.len(),
            want.data.len(),
            want.shape
        ));
    }
    let worst = got
        .iter()
        .zip(&want.data)
        .enumerate()
        .map(|(i, (&g, &w))| (i, g, w, element_error(g, w)))
        .max_by(|a, b| a.3.total_cmp(&b.3).then(std::cmp::Ordering::Greater))?;
    let (index, g, w, err) = worst;
    (err > tolerance).then(|| {
        format!("error {err:.2e} > {tolerance:.0e} at index {index} (got {g}, expected {w})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_match_only_their_own_kind() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        assert_eq!(element_error(nan, nan), 0.0);
        assert_eq!(element_error(inf, inf), 0.0);
        assert_eq!(element_error(-inf, -inf), 0.0);
        for (got, want) in [
            (nan, 1.0),
            (1.0, nan),
            (inf, -inf),
            (inf, nan),
            (1e308, inf),
        ] {
            assert_eq!(element_error(got, want), inf, "{got} against {want}");
        }
        assert_eq!(element_error(3.0, 2.0), 0.5);
        assert_eq!(element_error(0.5, 0.25), 0.25);
        let want = TensorValue {
            shape: vec![2],
            data: vec![nan, 1.0],
        };
        assert_eq!(compare(Some(&[nan, 1.0]), Some(&want), 1e-9), None);
        let problem = compare(Some(&[0.0, 1.0]), Some(&want), 1e-9).unwrap();
        assert!(
            problem.contains("index 0 (got 0, expected NaN)"),
            "{problem}"
        );
    }
}
