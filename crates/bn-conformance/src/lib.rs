//! Runs PyTorch golden cases (the format of `scripts/gen_golden.py`) through the
//! layers of `bn-layers` and compares every output, gradient and running statistic: the
//! runner behind the root package's `conformance` example and conformance tests.
//!
//! Each case builds a layer from PyTorch's class name and keyword arguments, loads its
//! parameters and initial running statistics, then runs the steps in order in train or eval
//! mode, carrying the running statistics across steps. A step either produces outputs, checked
//! against `output`, the gradients of `sum(output * upstream)` and the running statistics
//! afterwards, or must fail with the named [`NormError`] kind. Nothing
//! here looks at case names.

pub mod build;
mod golden;

pub use golden::{Case, GoldenFile, Mode, Step, StepResults, TensorValue, cases_missing};

use bn_layers::{ComputePath, NormError, set_training};
use bn_models::Norm;
use burn::tensor::{Device, Tensor, TensorData};

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

/// The verdict on one case.
#[derive(Debug)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Every mismatch found; empty when the case passed.
    pub failures: Vec<String>,
    /// Our error next to PyTorch's float32 error, per quantity (precision cases).
    pub notes: Vec<String>,
}

impl CaseReport {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line: `ok   name` or `FAIL name: first problem (+N more)`.
    pub fn line(&self) -> String {
        match self.failures.as_slice() {
            [] if self.notes.is_empty() => format!("ok   {}", self.name),
            [] => format!("ok   {} ({})", self.name, self.notes.join(", ")),
            [only] => format!("FAIL {}: {only}", self.name),
            [first, rest @ ..] => format!("FAIL {}: {first} (+{} more)", self.name, rest.len()),
        }
    }
}

/// Runs every case of `file`, calling `report` after each, and returns `(passed, failed)`.
pub fn run_file(
    file: &GoldenFile,
    options: &RunOptions,
    mut report: impl FnMut(&CaseReport),
) -> (usize, usize) {
    let mut counts = (0, 0);
    for case in &file.cases {
        let verdict = run_case(case, options);
        if verdict.passed() {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        report(&verdict);
    }
    counts
}

/// Runs one case.
pub fn run_case(case: &Case, options: &RunOptions) -> CaseReport {
    let mut notes = Vec::new();
    let failures = match check_case(case, options, &mut notes) {
        Ok(failures) => failures,
        Err(problem) => vec![problem],
    };
    CaseReport {
        name: case.name.clone(),
        failures,
        notes,
    }
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

    let mut failures = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        layer = set_training(layer, step.mode == Mode::Train);
        let at = |what: &str| format!("step {index} ({:?}) {what}", step.mode);
        let result = run_step(&layer, step, &device);
        match (result, &step.error) {
            (Err(StepError::Norm(err)), Some(kind)) if err.kind() == kind => {}
            (Err(StepError::Norm(err)), _) => {
                failures.push(at(&format!("failed: {err} ({})", err.kind())))
            }
            (Err(StepError::Case(problem)), _) => return Err(at(&problem)),
            (Ok(_), Some(kind)) => failures.push(at(&format!("accepted, expected {kind}"))),
            (Ok(got), None) => {
                let (gamma, beta) = build::params(&layer);
                let pytorch_f32 = step
                    .float32
                    .as_ref()
                    .filter(|_| options.against_pytorch_f32);
                let mut check = |what: &str, got: Option<&[f64]>| {
                    let want = step.expected.get(what);
                    let yardstick = pytorch_f32.and_then(|f32| f32.get(what));
                    let problem = match (got, want, yardstick) {
                        (Some(got), Some(want), Some(torch)) if got.len() == want.data.len() => {
                            let (ours, theirs) =
                                (error(got, &want.data), error(&torch.data, &want.data));
                            notes.push(format!("{index}.{what} {ours:.1e}/{theirs:.1e}"));
                            let allowed = f64::max(2.0 * theirs, F32_FLOOR);
                            (ours > allowed).then(|| {
                                format!(
                                    "error {ours:.2e} > 2 × PyTorch's float32 error {theirs:.2e}"
                                )
                            })
                        }
                        _ => compare(got, want, options.tolerance),
                    };
                    problem.map(|problem| at(&format!("{what}: {problem}")))
                };
                let (mean, var, count) = build::running_state(&layer);
                let mean = mean.map(host);
                let var = var.map(host);
                let checks = [
                    check("output", Some(&got.output)),
                    check("grad_input", Some(&got.grad_input)),
                    check("grad_weight", gamma.and(got.grad_weight.as_deref())),
                    check("grad_bias", beta.and(got.grad_bias.as_deref())),
                    check("running_mean", mean.as_deref()),
                    check("running_var", var.as_deref()),
                ];
                failures.extend(checks.into_iter().flatten());
                if count != step.num_batches_tracked {
                    failures.push(at(&format!(
                        "num_batches_tracked: got {count:?}, expected {:?}",
                        step.num_batches_tracked
                    )));
                }
            }
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
    grad_input: Vec<f64>,
    grad_weight: Option<Vec<f64>>,
    grad_bias: Option<Vec<f64>>,
}

fn run_step(layer: &Norm, step: &Step, device: &Device) -> Result<StepOutputs, StepError> {
    step.input.validate("input").map_err(StepError::Case)?;
    match step.input.shape.len() {
        1 => run_ranked::<1>(layer, step, device),
        2 => run_ranked::<2>(layer, step, device),
        3 => run_ranked::<3>(layer, step, device),
        4 => run_ranked::<4>(layer, step, device),
        5 => run_ranked::<5>(layer, step, device),
        6 => run_ranked::<6>(layer, step, device),
        rank => Err(StepError::Case(format!(
            "rank {rank} inputs are not supported (1 to 6)"
        ))),
    }
}

fn run_ranked<const D: usize>(
    layer: &Norm,
    step: &Step,
    device: &Device,
) -> Result<StepOutputs, StepError> {
    let tensor = |value: &TensorValue| -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(value.data.clone(), value.shape.clone()),
            device,
        )
    };
    let x = tensor(&step.input).require_grad();
    let y = layer.try_forward(x.clone()).map_err(StepError::Norm)?;
    let upstream = match &step.upstream {
        Some(upstream) => {
            upstream.validate("upstream").map_err(StepError::Case)?;
            if upstream.shape != step.input.shape {
                return Err(StepError::Case("upstream and input shapes differ".into()));
            }
            tensor(upstream)
        }
        None => Tensor::ones(y.dims(), device),
    };
    let grads = (y.clone() * upstream).sum().backward();
    let (gamma, beta) = build::params(layer);
    let numel = step.input.data.len();
    Ok(StepOutputs {
        output: host(y),
        grad_input: x.grad(&grads).map(host).unwrap_or_else(|| vec![0.0; numel]),
        grad_weight: gamma.and_then(|p| p.grad(&grads)).map(host),
        grad_bias: beta.and_then(|p| p.grad(&grads)).map(host),
    })
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
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
