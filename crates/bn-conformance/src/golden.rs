//! The golden-file format written by `scripts/gen_golden.py` (see its docstring).
//!
//! JSON has no NaN or infinity, so a tensor's values are numbers or one of the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"` (the spellings of Python's `json` module).

use std::path::Path;

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
    /// The forwards to run, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// One forward (and backward) pass and what PyTorch computed for it.
#[derive(Debug, Deserialize)]
pub struct Step {
    /// `train` or `eval`.
    pub mode: Mode,
    /// The input.
    pub input: TensorValue,
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

/// PyTorch's `module.train()` / `module.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Training mode.
    Train,
    /// Evaluation mode.
    Eval,
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
}
