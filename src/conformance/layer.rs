//! Builds any of the crate's layers from a golden case's PyTorch class name and kwargs.

use bn_layers::{
    BatchCounter, BatchNorm, BatchNormConfig, ComputePath, GroupNorm, GroupNormConfig, InputRank,
    InstanceNorm, InstanceNormConfig, LayerNorm, LayerNormConfig, NormError, RunningStats,
};
use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};

use super::golden::{Case, TensorValue};

/// One layer of any kind, as a golden case describes it.
#[derive(Debug)]
pub enum AnyLayer {
    /// `BatchNorm1d`, `BatchNorm2d`, `BatchNorm3d`.
    Batch(BatchNorm),
    /// `LayerNorm`.
    Layer(LayerNorm),
    /// `GroupNorm`.
    Group(GroupNorm),
    /// `InstanceNorm1d`, `InstanceNorm2d`, `InstanceNorm3d`.
    Instance(InstanceNorm),
}

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

impl AnyLayer {
    /// Builds the layer of `case` on `device`. The outer error is a problem with the case
    /// itself (unknown layer or key); the inner one is the layer refusing its configuration.
    pub fn build(
        case: &Case,
        path: ComputePath,
        device: &Device,
    ) -> Result<Result<AnyLayer, NormError>, String> {
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
                config.try_init(device).map(AnyLayer::Batch)
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
                config.try_init(device).map(AnyLayer::Instance)
            }
            "LayerNorm" => {
                let config = LayerNormConfig::new(kw.shape("normalized_shape")?)
                    .with_eps(kw.f64_or("eps", 1e-5)?)
                    .with_elementwise_affine(kw.bool_or("elementwise_affine", true)?)
                    .with_bias(kw.bool_or("bias", true)?)
                    .with_path(path);
                kw.finish()?;
                config.try_init(device).map(AnyLayer::Layer)
            }
            "GroupNorm" => {
                let config =
                    GroupNormConfig::new(kw.usize("num_groups")?, kw.usize("num_channels")?)
                        .with_eps(kw.f64_or("eps", 1e-5)?)
                        .with_affine(kw.bool_or("affine", true)?)
                        .with_path(path);
                kw.finish()?;
                config.try_init(device).map(AnyLayer::Group)
            }
            other => return Err(format!("unknown layer '{other}'")),
        };
        Ok(layer)
    }

    /// Replaces parameters and running statistics with the case's initial values.
    pub fn load_initial_state(&mut self, case: &Case, device: &Device) -> Result<(), String> {
        let tensor = |value: &TensorValue, what: &str| -> Result<Tensor<1>, String> {
            value.validate(what)?;
            Ok(Tensor::from_data(
                TensorData::new(value.data.clone(), [value.data.len()]),
                device,
            ))
        };
        let (gamma, beta) = self.params_mut();
        set_param(gamma, case.weight.as_ref(), "weight", &tensor)?;
        set_param(beta, case.bias.as_ref(), "bias", &tensor)?;
        if let Some(running) = self.running_mut() {
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

    /// Runs the layer's `try_forward`.
    pub fn try_forward<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>, NormError> {
        match self {
            AnyLayer::Batch(layer) => layer.try_forward(x),
            AnyLayer::Layer(layer) => layer.try_forward(x),
            AnyLayer::Group(layer) => layer.try_forward(x),
            AnyLayer::Instance(layer) => layer.try_forward(x),
        }
    }

    /// Switches training mode on or off, staying on the same device.
    pub fn set_training(self, training: bool) -> Self {
        use bn_layers::set_training;
        match self {
            AnyLayer::Batch(layer) => AnyLayer::Batch(set_training(layer, training)),
            AnyLayer::Layer(layer) => AnyLayer::Layer(set_training(layer, training)),
            AnyLayer::Group(layer) => AnyLayer::Group(set_training(layer, training)),
            AnyLayer::Instance(layer) => AnyLayer::Instance(set_training(layer, training)),
        }
    }

    /// PyTorch's `weight` and `bias`.
    pub fn params(&self) -> (Option<&Param<Tensor<1>>>, Option<&Param<Tensor<1>>>) {
        match self {
            AnyLayer::Batch(l) => (l.gamma.as_ref(), l.beta.as_ref()),
            AnyLayer::Layer(l) => (l.gamma.as_ref(), l.beta.as_ref()),
            AnyLayer::Group(l) => (l.gamma.as_ref(), l.beta.as_ref()),
            AnyLayer::Instance(l) => (l.gamma.as_ref(), l.beta.as_ref()),
        }
    }

    fn params_mut(&mut self) -> (&mut Option<Param<Tensor<1>>>, &mut Option<Param<Tensor<1>>>) {
        match self {
            AnyLayer::Batch(l) => (&mut l.gamma, &mut l.beta),
            AnyLayer::Layer(l) => (&mut l.gamma, &mut l.beta),
            AnyLayer::Group(l) => (&mut l.gamma, &mut l.beta),
            AnyLayer::Instance(l) => (&mut l.gamma, &mut l.beta),
        }
    }

    /// The running statistics, where the layer tracks them.
    fn running_mut(&mut self) -> Option<&mut RunningStats> {
        match self {
            AnyLayer::Batch(l) => l.running.as_mut(),
            AnyLayer::Instance(l) => l.running.as_mut(),
            AnyLayer::Layer(_) | AnyLayer::Group(_) => None,
        }
    }

    /// Running mean, running variance and `num_batches_tracked`, where the layer has them.
    pub fn running_state(&self) -> (Option<Tensor<1>>, Option<Tensor<1>>, Option<i64>) {
        let (stats, count) = match self {
            AnyLayer::Batch(l) => (l.running_stats(), l.num_batches_tracked()),
            AnyLayer::Instance(l) => (l.running_stats(), l.num_batches_tracked()),
            AnyLayer::Layer(_) | AnyLayer::Group(_) => (None, None),
        };
        match stats {
            Some((mean, var)) => (Some(mean), Some(var), count),
            None => (None, None, count),
        }
    }
}

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
