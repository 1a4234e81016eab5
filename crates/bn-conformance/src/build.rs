//! Builds a golden case's layer, a [`Norm`], from its PyTorch class name and keyword
//! arguments, and reaches into it for what a case sets and checks: PyTorch's `weight` and
//! `bias`, and the running statistics.

use bn_layers::{
    BatchCounter, BatchNormConfig, ComputePath, GroupNormConfig, InputRank, InstanceNormConfig,
    LayerNormConfig, NormError, RmsNormConfig, RunningStats,
};
use bn_models::Norm;
use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::golden::{Case, TensorValue};

/// Reads PyTorch keyword arguments, refusing any it does not know so that nothing in a
/// case is silently ignored.
struct Kwargs<'a> {
    layer: &'a str,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Kwargs<'a> {
    fn new(layer: &'a str, map: &'a Map<String, Value>) -> Self {
        Self {
            layer,
            map,
            known: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key)
    }

    fn usize(&mut self, key: &'static str) -> Result<usize, String> {
        self.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| {
                format!(
                    "{}: config needs a non-negative integer '{key}'",
                    self.layer
                )
            })
    }

    fn f64_or(&mut self, key: &'static str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| format!("{}: config '{key}' must be a number, got {v}", self.layer)),
        }
    }

    /// A number or `null` (PyTorch's `None`); absent means `default`.
    fn opt_f64_or(
        &mut self,
        key: &'static str,
        default: Option<f64>,
    ) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                format!(
                    "{}: config '{key}' must be a number or null, got {v}",
                    self.layer
                )
            }),
        }
    }

    fn bool_or(&mut self, key: &'static str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                format!(
                    "{}: config '{key}' must be true or false, got {v}",
                    self.layer
                )
            }),
        }
    }

    fn shape(&mut self, key: &'static str) -> Result<Vec<usize>, String> {
        match self.get(key) {
            Some(Value::Number(n)) if n.is_u64() => Ok(vec![n.as_u64().unwrap_or(0) as usize]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().map(|v| v as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{}: config '{key}' must list integers", self.layer)),
            _ => Err(format!(
                "{}: config needs '{key}' (an integer or a list)",
                self.layer
            )),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            Some(key) => Err(format!("{}: unsupported config key '{key}'", self.layer)),
            None => Ok(()),
        }
    }
}

/// Builds the layer of `case` on `device`: `BatchNorm1d/2d/3d` as [`Norm::Batch`],
/// `InstanceNorm1d/2d/3d` as [`Norm::Instance`], `LayerNorm`, `GroupNorm` and `RMSNorm`
/// (which has no compute path of its own). The outer error
/// is a problem with the case itself (unknown layer or key); the inner one is the layer
/// refusing its configuration.
pub fn build(
    case: &Case,
    path: ComputePath,
    device: &Device,
) -> Result<Result<Norm, NormError>, String> {
    let mut kw = Kwargs::new(&case.layer, &case.config);
    let rank = match case.layer.as_str() {
        "BatchNorm1d" | "InstanceNorm1d" => InputRank::D1,
        "BatchNorm2d" | "InstanceNorm2d" => InputRank::D2,
        "BatchNorm3d" | "InstanceNorm3d" => InputRank::D3,
        _ => InputRank::Any,
    };
    let layer = match case.layer.as_str() {
        "BatchNorm" | "BatchNorm1d" | "BatchNorm2d" | "BatchNorm3d" => {
            let config = BatchNormConfig::new(kw.usize("num_features")?)
                .with_eps(kw.f64_or("eps", 1e-5)?)
                .with_momentum(kw.opt_f64_or("momentum", Some(0.1))?)
                .with_affine(kw.bool_or("affine", true)?)
                .with_track_running_stats(kw.bool_or("track_running_stats", true)?)
                .with_input_rank(rank)
                .with_path(path);
            kw.finish()?;
            config.try_init(device).map(Norm::Batch)
        }
        "InstanceNorm" | "InstanceNorm1d" | "InstanceNorm2d" | "InstanceNorm3d" => {
            // PyTorch hands `momentum=None` to the kernel as 0.0.
            let momentum = kw.opt_f64_or("momentum", Some(0.1))?.unwrap_or(0.0);
            let config = InstanceNormConfig::new(kw.usize("num_features")?)
                .with_eps(kw.f64_or("eps", 1e-5)?)
                .with_momentum(momentum)
                .with_affine(kw.bool_or("affine", false)?)
                .with_track_running_stats(kw.bool_or("track_running_stats", false)?)
                .with_input_rank(rank)
                .with_path(path);
            kw.finish()?;
            config.try_init(device).map(Norm::Instance)
        }
        "LayerNorm" => {
            let config = LayerNormConfig::new(kw.shape("normalized_shape")?)
                .with_eps(kw.f64_or("eps", 1e-5)?)
                .with_elementwise_affine(kw.bool_or("elementwise_affine", true)?)
                .with_bias(kw.bool_or("bias", true)?)
                .with_path(path);
            kw.finish()?;
            config.try_init(device).map(Norm::Layer)
        }
        "GroupNorm" => {
            let config = GroupNormConfig::new(kw.usize("num_groups")?, kw.usize("num_channels")?)
                .with_eps(kw.f64_or("eps", 1e-5)?)
                .with_affine(kw.bool_or("affine", true)?)
                .with_path(path);
            kw.finish()?;
            config.try_init(device).map(Norm::Group)
        }
        "RMSNorm" => {
            let config = RmsNormConfig::new(kw.shape("normalized_shape")?)
                .with_eps(kw.opt_f64_or("eps", None)?)
                .with_elementwise_affine(kw.bool_or("elementwise_affine", true)?);
            kw.finish()?;
            config.try_init(device).map(Norm::Rms)
        }
        other => return Err(format!("unknown layer '{other}'")),
    };
    Ok(layer)
}

/// Replaces the layer's parameters and running statistics with the case's initial values.
pub fn load_initial_state(layer: &mut Norm, case: &Case, device: &Device) -> Result<(), String> {
    let tensor = |value: &TensorValue, what: &str| -> Result<Tensor<1>, String> {
        value.validate(what)?;
        Ok(Tensor::from_data(
            TensorData::new(value.data.clone(), [value.data.len()]),
            device,
        ))
    };
    let mut no_bias = None; // RMSNorm's: a case's bias then has nowhere to go
    let (gamma, beta) = params_mut(layer)?;
    set_param(gamma, case.weight.as_ref(), "weight", &tensor)?;
    set_param(
        beta.unwrap_or(&mut no_bias),
        case.bias.as_ref(),
        "bias",
        &tensor,
    )?;
    if let Some(running) = running_mut(layer)? {
        if let Some(value) = &case.initial_running_mean {
            running.mean = RunningState::new(tensor(value, "initial_running_mean")?);
        }
        if let Some(value) = &case.initial_running_var {
            running.var = RunningState::new(tensor(value, "initial_running_var")?);
        }
        if let Some(value) = case.initial_num_batches_tracked {
            running.num_batches_tracked = BatchCounter::new(value, device);
        }
    }
    Ok(())
}

/// PyTorch's `weight` and `bias` of a layer [`build`] makes.
pub fn params(layer: &Norm) -> (Option<&Param<Tensor<1>>>, Option<&Param<Tensor<1>>>) {
    match layer {
        Norm::Batch(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        Norm::Layer(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        Norm::Group(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        Norm::Instance(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        Norm::Sync(l) => (l.bn.gamma.as_ref(), l.bn.beta.as_ref()),
        Norm::Burn(l) => (Some(&l.gamma), Some(&l.beta)),
        Norm::Rms(l) => (l.gamma.as_ref(), None),
        Norm::Renorm(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        Norm::Ghost(l) => (l.norm.gamma.as_ref(), l.norm.beta.as_ref()),
    }
}

/// Running mean, running variance and `num_batches_tracked`, where the layer has them.
pub fn running_state(layer: &Norm) -> (Option<Tensor<1>>, Option<Tensor<1>>, Option<i64>) {
    let (stats, count) = match layer {
        Norm::Batch(l) => (l.running_stats(), l.num_batches_tracked()),
        Norm::Sync(l) => (l.bn.running_stats(), l.bn.num_batches_tracked()),
        Norm::Instance(l) => (l.running_stats(), l.num_batches_tracked()),
        Norm::Burn(l) => (Some((l.running_mean.value(), l.running_var.value())), None),
        Norm::Ghost(l) => (l.norm.running_stats(), l.norm.num_batches_tracked()),
        // A running standard deviation, not a variance: no golden case builds it.
        Norm::Renorm(_) => (None, None),
        Norm::Layer(_) | Norm::Group(_) | Norm::Rms(_) => (None, None),
    };
    match stats {
        Some((mean, var)) => (Some(mean), Some(var), count),
        None => (None, None, count),
    }
}

type ParamSlot<'a> = &'a mut Option<Param<Tensor<1>>>;

/// The `weight` slot and, where the layer kind has one, the `bias` slot.
fn params_mut(layer: &mut Norm) -> Result<(ParamSlot<'_>, Option<ParamSlot<'_>>), String> {
    match layer {
        Norm::Batch(l) => Ok((&mut l.gamma, Some(&mut l.beta))),
        Norm::Layer(l) => Ok((&mut l.gamma, Some(&mut l.beta))),
        Norm::Group(l) => Ok((&mut l.gamma, Some(&mut l.beta))),
        Norm::Instance(l) => Ok((&mut l.gamma, Some(&mut l.beta))),
        Norm::Sync(l) => Ok((&mut l.bn.gamma, Some(&mut l.bn.beta))),
        Norm::Rms(l) => Ok((&mut l.gamma, None)),
        Norm::Renorm(l) => Ok((&mut l.gamma, Some(&mut l.beta))),
        Norm::Ghost(l) => Ok((&mut l.norm.gamma, Some(&mut l.norm.beta))),
        Norm::Burn(_) => Err(NOT_BUILT.into()),
    }
}

/// The running statistics, where the layer tracks them.
fn running_mut(layer: &mut Norm) -> Result<Option<&mut RunningStats>, String> {
    match layer {
        Norm::Batch(l) => Ok(l.running.as_mut()),
        Norm::Sync(l) => Ok(l.bn.running.as_mut()),
        Norm::Instance(l) => Ok(l.running.as_mut()),
        Norm::Ghost(l) => Ok(l.norm.running.as_mut()),
        Norm::Layer(_) | Norm::Group(_) | Norm::Rms(_) => Ok(None),
        Norm::Burn(_) => Err(NOT_BUILT.into()),
        Norm::Renorm(_) => Err(
            "Batch Renorm keeps a running standard deviation, not PyTorch's running variance"
                .into(),
        ),
    }
}

/// Burn's BatchNorm has no `Option` around its parameters and no `num_batches_tracked`; no
/// golden case builds it.
const NOT_BUILT: &str = "Burn's built-in BatchNorm cannot take a golden case's state";

fn set_param(
    slot: &mut Option<Param<Tensor<1>>>,
    value: Option<&TensorValue>,
    what: &str,
    tensor: &dyn Fn(&TensorValue, &str) -> Result<Tensor<1>, String>,
) -> Result<(), String> {
    match (slot.as_ref(), value) {
        (_, None) => Ok(()),
        (None, Some(_)) => Err(format!("the case gives a {what} but the layer has none")),
        (Some(current), Some(value)) => {
            let new = tensor(value, what)?;
            if new.dims() != current.dims() {
                return Err(format!(
                    "{what} has {} values, the layer expects {}",
                    new.dims()[0],
                    current.dims()[0]
                ));
            }
            *slot = Some(Param::from_tensor(new));
            Ok(())
        }
    }
}
