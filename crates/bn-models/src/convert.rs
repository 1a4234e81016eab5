//! Trained weights moved from a model built with burn-nn's `BatchNorm` into the same model
//! built with this workspace's [`BatchNorm`](bn_layers::BatchNorm).
//!
//! Burn's module types are fixed when the model is compiled, so no function can swap the
//! layers inside a model: the user builds the model again with `bn_layers::BatchNorm` in place
//! of `burn::nn::BatchNorm`, and [`convert_batchnorm`] carries every tensor across.

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::TensorData;

use bn_layers::publish_running_state;

/// What [`convert_batchnorm`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conversion {
    /// The BatchNorm layers converted, by path (`block.bn`).
    pub layers: Vec<String>,
    /// Those whose running variance was copied biased, as burn-nn kept it, because no count
    /// of values per batch was given for them.
    pub variance_left_biased: Vec<String>,
}

/// Why the weights did not fit the destination model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the source model's tensors do not fit the destination: missing {missing:?}, unused \
     {unused:?}{}",
    if errors.is_empty() { String::new() } else { format!(", errors: {errors:?}") }
)]
pub struct ConvertError {
    /// Destination tensors with no source (another architecture?).
    pub missing: Vec<String>,
    /// Source tensors with no destination.
    pub unused: Vec<String>,
    /// Shape or dtype mismatches.
    pub errors: Vec<String>,
}

/// Copies every tensor of `from`, a model with burn-nn's `BatchNorm` layers, into `into`, the
/// same model with [`bn_layers::BatchNorm`] in their places, path by path (enum variant names
/// are ignored, so `Norm::Burn` fills `Norm::Batch`).
///
/// Each burn-nn BatchNorm's `gamma` and `beta` carry over and its `running_mean` becomes
/// `running.mean`. burn-nn keeps the running variance **biased** (each batch's variance
/// divided by its count `n` of values per channel: batch size × spatial positions); PyTorch and
/// this workspace keep it unbiased. When `values_per_batch(layer)` gives `n` for a layer, its
/// variance is multiplied by `n / (n - 1)` (exact once the initial 1 has decayed from the
/// average: after `t` steps it weighs `(1 - momentum)^t`); when it gives `None` the biased
/// variance is copied as it is and the layer is listed in
/// [`Conversion::variance_left_biased`]. `num_batches_tracked`, which burn-nn does not keep,
/// starts at 0.
///
/// # Errors
/// [`ConvertError`] when the two models' tensors do not correspond one to one.
///
/// # Example
/// ```
/// use bn_models::convert::convert_batchnorm;
/// use burn::module::Module;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let theirs = burn::nn::BatchNormConfig::new(2).init(&device);
/// theirs.forward(Tensor::<2>::from_data([[1.0, 2.0], [3.0, 6.0]], &device));
/// let ours = bn_layers::BatchNormConfig::new_1d(2).init(&device);
/// let (ours, report) = convert_batchnorm(&theirs, ours, |_| Some(2)).unwrap();
/// let (_, var) = ours.running_stats().unwrap();
/// // burn-nn: 0.9 + 0.1 · (1, 4), biased; unbiased over 2 values: times 2.
/// let var = var.into_data().try_to_vec::<f32>().unwrap();
/// assert!((var[0] - 2.0).abs() < 1e-6 && (var[1] - 2.6).abs() < 1e-6);
/// assert_eq!(report.layers.len(), 1);
/// ```
pub fn convert_batchnorm<A: Module, B: Module>(
    from: &A,
    mut into: B,
    values_per_batch: impl Fn(&str) -> Option<usize>,
) -> Result<(B, Conversion), ConvertError> {
    publish_running_state(from);
    let mut conversion = Conversion::default();
    let mut tensors = Vec::new();
    for tensor in from.collect(None, None, true) {
        let name = tensor.name.clone();
        let (layer, field) = match name.rsplit_once('.') {
            Some((layer, field)) => (layer.to_string(), field),
            None => (String::new(), name.as_str()),
        };
        let with_layer = |field: &str| match layer.as_str() {
            "" => field.to_string(),
            layer => format!("{layer}.{field}"),
        };
        match field {
            "running_mean" => tensors.push(renamed(tensor, with_layer("running.mean"))),
            "running_var" => {
                let data = bridge::into_data(tensor).expect("a live model's tensor has data");
                let data = match values_per_batch(&layer) {
                    Some(n) if n > 1 => unbiased(data, n),
                    _ => {
                        conversion.variance_left_biased.push(layer.clone());
                        data
                    }
                };
                tensors.push(bridge::from_data(data, with_layer("running.var"), None));
                tensors.push(bridge::from_data(
                    TensorData::new(vec![0i64], [1]),
                    with_layer("running.num_batches_tracked"),
                    None,
                ));
                conversion.layers.push(layer);
            }
            _ => tensors.push(tensor),
        }
    }
    let result = into.apply(tensors, None, None, true);
    if !(result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty()) {
        return Err(ConvertError {
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            unused: result.unused,
            errors: result.errors.iter().map(ToString::to_string).collect(),
        });
    }
    Ok((into, conversion))
}

/// `tensor` under the path `name`.
fn renamed(tensor: PackTensor, name: String) -> PackTensor {
    let data = bridge::into_data(tensor).expect("a live model's tensor has data");
    bridge::from_data(data, name, None)
}

/// A biased variance over `n` values made unbiased: `· n / (n - 1)`, in its own dtype.
fn unbiased(data: TensorData, n: usize) -> TensorData {
    let dtype = data.dtype();
    let shape = data.shape().to_vec();
    let factor = n as f64 / (n as f64 - 1.0);
    let values: Vec<f64> = data.iter::<f64>().map(|v| v * factor).collect();
    TensorData::new(values, shape).convert_dtype(dtype)
}
