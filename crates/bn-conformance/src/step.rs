//! One step of a case run through a layer: a forward (and backward) in train or eval mode, or
//! a recalibration over the step's batches.

use bn_layers::{NormError, recalibrate};
use bn_models::Norm;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::build;
use crate::golden::{Step, TensorValue};

/// Why a step produced no outputs.
pub(crate) enum StepError {
    /// The layer refused the input.
    Norm(NormError),
    /// The step itself is malformed or unsupported.
    Case(String),
}

/// What a train or eval step produced, on the host: the output and the gradients of
/// `sum(output * upstream)`.
pub(crate) struct StepOutputs {
    pub(crate) output: Vec<f64>,
    /// The output's dtype: the input's, for a half-precision case.
    pub(crate) dtype: DType,
    pub(crate) grad_input: Vec<f64>,
    pub(crate) grad_weight: Option<Vec<f64>>,
    pub(crate) grad_bias: Option<Vec<f64>>,
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

/// Runs a train or eval step: the layer's forward on the step's input, then the backward.
pub(crate) fn run_step(
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

/// [`run_step`] on rank-`D` tensors.
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
pub(crate) fn recalibrate_step(
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

/// [`recalibrate_step`] on rank-`D` batches.
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
pub(crate) fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    let tensor = match tensor.dtype() {
        DType::F16 | DType::BF16 => tensor.cast(DType::F32),
        _ => tensor,
    };
    tensor.into_data().iter::<f64>().collect()
}
