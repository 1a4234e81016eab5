//! The golden-file format written by `scripts/gen_golden.py` (see its docstring).
//!
//! JSON has no NaN or infinity, so a tensor's values are numbers or one of the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"` (the spellings of Python's `json` module).

use std::path::Path;

use burn::tensor::DType;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A whole golden file.
#[derive(Debug, Deserialize)]
pub struct GoldenFile {
    /// The PyTorch version that produced the file.
    #[serde(default)]
    pub torch_version: Option<String>,
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

/// One layer, built from `config`, run through `steps` with running statistics carried over.
#[derive(Debug, Deserialize)]
pub struct Case {
    /// Free-form case name, only printed.
    pub name: String,
    /// PyTorch class name: `BatchNorm1d`, `LayerNorm`, `InstanceNorm2d`, ...
    pub layer: String,
    /// PyTorch constructor keyword arguments.
    pub config: Map<String, Value>,
    /// The `NormError` kind building the layer must fail with, if any.
    #[serde(default)]
    pub init_error: Option<String>,
    /// PyTorch's `weight`, if the layer has one.
    #[serde(default)]
    pub weight: Option<TensorValue>,
    /// PyTorch's `bias`, if the layer has one.
    #[serde(default)]
    pub bias: Option<TensorValue>,
    /// Running mean before the first step.
    #[serde(default)]
    pub initial_running_mean: Option<TensorValue>,
    /// Running variance before the first step.
    #[serde(default)]
    pub initial_running_var: Option<TensorValue>,
    /// `num_batches_tracked` before the first step.
    #[serde(default)]
    pub initial_num_batches_tracked: Option<i64>,
    /// The half dtype of the inputs of a half-precision case (the layer itself is float32 in
    /// PyTorch); `None` for a case in the run's own float type.
    #[serde(default)]
    pub dtype: Option<HalfDType>,
    /// The forwards to run, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// One forward (and backward) pass, or one recalibration, and what PyTorch computed for it.
#[derive(Debug, Deserialize)]
pub struct Step {
    /// `train`, `eval` or `recalibrate`.
    pub mode: Mode,
    /// The input of a `train` or `eval` step.
    #[serde(default)]
    pub input: Option<TensorValue>,
    /// The batches of a `recalibrate` step, in order.
    #[serde(default)]
    pub batches: Vec<TensorValue>,
    /// The `NormError` kind this forward must fail with, instead of outputs.
    #[serde(default)]
    pub error: Option<String>,
    /// `U` in `loss = sum(Y * U)`.
    #[serde(default)]
    pub upstream: Option<TensorValue>,
    /// What PyTorch computed in float64: the expected values.
    #[serde(flatten)]
    pub expected: StepResults,
    /// Expected `num_batches_tracked` after the step.
    #[serde(default)]
    pub num_batches_tracked: Option<i64>,
    /// PyTorch's own float32 results for this step (precision cases), against the same
    /// float64 reference.
    #[serde(default)]
    pub float32: Option<StepResults>,
}

/// The outputs, gradients and running statistics of one step, as PyTorch computed them.
#[derive(Debug, Default, Deserialize)]
pub struct StepResults {
    /// Output `Y`.
    #[serde(default)]
    pub output: Option<TensorValue>,
    /// Gradient of the loss for the input.
    #[serde(default)]
    pub grad_input: Option<TensorValue>,
    /// Gradient for `weight`.
    #[serde(default)]
    pub grad_weight: Option<TensorValue>,
    /// Gradient for `bias`.
    #[serde(default)]
    pub grad_bias: Option<TensorValue>,
    /// Running mean after the step.
    #[serde(default)]
    pub running_mean: Option<TensorValue>,
    /// Running variance after the step.
    #[serde(default)]
    pub running_var: Option<TensorValue>,
}

/// PyTorch's `module.train()` / `module.eval()`, or `update_bn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A forward in training mode.
    Train,
    /// A forward in evaluation mode.
    Eval,
    /// `torch.optim.swa_utils.update_bn(batches, layer)`: [`bn_layers::recalibrate`].
    Recalibrate,
}

/// A half-precision case's input dtype, by PyTorch's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HalfDType {
    /// `torch.bfloat16`.
    Bfloat16,
    /// `torch.float16`.
    Float16,
}

/// PyTorch's name: `bfloat16`, `float16`.
impl std::fmt::Display for HalfDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HalfDType::Bfloat16 => "bfloat16",
            HalfDType::Float16 => "float16",
        })
    }
}

impl From<HalfDType> for DType {
    fn from(dtype: HalfDType) -> Self {
        match dtype {
            HalfDType::Bfloat16 => DType::BF16,
            HalfDType::Float16 => DType::F16,
        }
    }
}

/// A tensor as the golden file stores it: a shape and the row-major values.
#[derive(Debug, Clone, Deserialize)]
pub struct TensorValue {
    /// The shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    #[serde(deserialize_with = "values")]
    pub data: Vec<f64>,
}

/// Reads a tensor's values: numbers, and NaN and infinities spelled as strings.
fn values<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    Vec::<Value>::deserialize(deserializer)?
        .into_iter()
        .map(|value| match &value {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| D::Error::custom("unreadable number")),
            Value::String(word) if word == "NaN" => Ok(f64::NAN),
            Value::String(word) if word == "Infinity" => Ok(f64::INFINITY),
            Value::String(word) if word == "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(D::Error::custom(format!(
                "{other} is not a value: a number, \"NaN\", \"Infinity\" or \"-Infinity\""
            ))),
        })
        .collect()
}

impl GoldenFile {
    /// Reads and parses a golden file.
    ///
    /// # Errors
    /// When the file cannot be read or is not in the golden format; the message names the
    /// file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read golden file {}: {err}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|err| format!("{} is not a golden file: {err}", path.display()))
    }
}

/// The names of the cases of the golden file `subset` that `file` does not hold unchanged
/// (the same JSON value, key for key). The project's golden file holds every case of the
/// shared one plus its own; CI checks it with this.
///
/// # Errors
/// When either file cannot be read or has no `cases` list; the message names the file.
pub fn cases_missing(file: &Path, subset: &Path) -> Result<Vec<String>, String> {
    let cases = |path: &Path| -> Result<Vec<Value>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read golden file {}: {err}", path.display()))?;
        let mut doc: Value = serde_json::from_str(&text)
            .map_err(|err| format!("{} is not JSON: {err}", path.display()))?;
        match doc.get_mut("cases").map(Value::take) {
            Some(Value::Array(cases)) => Ok(cases),
            _ => Err(format!("{} has no list of cases", path.display())),
        }
    };
    let held = cases(file)?;
    Ok(cases(subset)?
        .into_iter()
        .filter(|case| !held.contains(case))
        .map(|case| case["name"].as_str().unwrap_or("(unnamed)").to_string())
        .collect())
}

impl StepResults {
    /// The result for a quantity by its golden-file name (`output`, `grad_input`, ...).
    pub fn get(&self, what: &str) -> Option<&TensorValue> {
        match what {
            "output" => self.output.as_ref(),
            "grad_input" => self.grad_input.as_ref(),
            "grad_weight" => self.grad_weight.as_ref(),
            "grad_bias" => self.grad_bias.as_ref(),
            "running_mean" => self.running_mean.as_ref(),
            "running_var" => self.running_var.as_ref(),
            _ => None,
        }
    }
}

impl TensorValue {
    /// Checks that the shape holds exactly the stored number of values.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        let expected: usize = self.shape.iter().product();
        if expected == self.data.len() {
            Ok(())
        } else {
            Err(format!(
                "{what}: shape {:?} needs {expected} values, the file has {}",
                self.shape,
                self.data.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_read_from_their_spellings() {
        let read = |data: &str| {
            serde_json::from_str::<TensorValue>(&format!(r#"{{"shape": [4], "data": {data}}}"#))
        };
        let tensor = read(r#"[1.5, "NaN", "Infinity", "-Infinity"]"#).unwrap();
        assert_eq!(tensor.data[0], 1.5);
        assert!(tensor.data[1].is_nan());
        assert_eq!(tensor.data[2..], [f64::INFINITY, f64::NEG_INFINITY]);
        let err = read(r#"[1.5, "nan", 2, 3]"#).unwrap_err().to_string();
        assert!(err.contains(r#""nan" is not a value"#), "{err}");
        assert!(read("[1, null, 2, 3]").is_err());
    }

    #[test]
    fn half_cases_and_recalibrate_steps_are_read_and_unknown_dtypes_named() {
        let case = |dtype: &str| {
            serde_json::from_str::<Case>(&format!(
                r#"{{"name": "c", "layer": "BatchNorm1d", "config": {{"num_features": 1}},
                    "dtype": "{dtype}",
                    "steps": [{{"mode": "recalibrate",
                                "batches": [{{"shape": [2, 1], "data": [1, 3]}}],
                                "running_mean": {{"shape": [1], "data": [2]}},
                                "num_batches_tracked": 1}}]}}"#
            ))
        };
        let read = case("bfloat16").unwrap();
        assert_eq!(read.dtype, Some(HalfDType::Bfloat16));
        assert_eq!(DType::from(HalfDType::Float16), DType::F16);
        let step = &read.steps[0];
        assert_eq!(step.mode, Mode::Recalibrate);
        assert!(step.input.is_none());
        assert_eq!(step.batches[0].data, [1.0, 3.0]);
        assert_eq!(step.expected.running_mean.as_ref().unwrap().data, [2.0]);
        let err = case("float8").unwrap_err().to_string();
        assert!(err.contains("float8"), "{err}");
    }
}
