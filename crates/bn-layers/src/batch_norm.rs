//! Batch normalization with PyTorch's `nn.BatchNorm1d/2d/3d` semantics.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::activation::maybe_apply;
use crate::display;
use crate::error::{check_eps, check_eps_for_batch_stats, check_momentum, check_nonzero};
use crate::functional::{self, channel_major};
use crate::precision::in_f32_if_half;
use crate::training::TrainingMode;
use crate::{Activation, ComputePath, InputRank, NormError, RunningStats, params};

/// Configuration of a [`BatchNorm`] layer. Field names and defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Number of channels `C` of the `[N, C, ...]` input.
    pub num_features: usize,
    /// Added to the variance before the square root. Default: `1e-5`.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Weight of the newest batch in the running statistics; `None` averages every batch
    /// seen so far equally (cumulative moving average). Default: `Some(0.1)`.
    #[config(default = "Some(0.1)")]
    pub momentum: Option<f64>,
    /// Learn a per-channel scale `gamma` (PyTorch's `weight`) and shift `beta` (`bias`).
    /// Default: `true`.
    #[config(default = true)]
    pub affine: bool,
    /// Keep running statistics for evaluation. Without them the layer normalizes with the
    /// batch's statistics in evaluation too. Default: `true`.
    #[config(default = true)]
    pub track_running_stats: bool,
    /// Which input ranks are accepted ([`InputRank::D2`] is PyTorch's `BatchNorm2d`).
    /// Default: [`InputRank::Any`].
    #[config(default = "InputRank::Any")]
    pub input_rank: InputRank,
    /// One fused op per mode or the composed textbook algorithm. Default: [`ComputePath::Fused`].
    #[config(default = "ComputePath::Fused")]
    pub path: ComputePath,
    /// The dtype of the running statistics; `None` keeps them in the device's default float,
    /// or in f32 where that default is f16 or bf16 (a half model's `running_var` would
    /// underflow). Default: `None`.
    #[config(default = "None")]
    pub stats_dtype: Option<FloatDType>,
}

/// Batch normalization over the channel axis of `[N, C, ...]` inputs.
///
/// Based on the paper [Batch Normalization: Accelerating Deep Network Training by Reducing
/// Internal Covariate Shift](https://arxiv.org/abs/1502.03167) (Ioffe & Szegedy, 2015).
///
/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`
///
/// In training mode `E[x]` and `Var[x]` are the batch's per-channel mean and **biased**
/// variance over `N` and every spatial position, and the running statistics move towards the
/// batch mean and the **unbiased** variance:
/// `running = (1 - momentum) * running + momentum * batch`, or with `momentum = None`
/// `momentum = 1 / num_batches_tracked` (a cumulative average). `num_batches_tracked` counts
/// every training forward. In evaluation mode the running statistics are used; a layer
/// without them (`track_running_stats = false`) uses batch statistics in both modes.
///
/// Training versus evaluation is decided at each forward, as burn-nn decides it
/// ([`TrainingMode`]): the layer trains when its mode is enabled and the input is on an
/// autodiff device. [`Module::valid`] switches it off (PyTorch's `eval()`), [`Module::train`]
/// back on; a layer built on a plain device trains once moved onto autodiff.
///
/// # Shapes
/// - input: `[N, C, ...]`, restricted by [`BatchNormConfig::input_rank`].
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::BatchNormConfig;
/// use burn::module::Module;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let bn = BatchNormConfig::new_1d(2).with_momentum(None).init(&device); // cumulative average
/// let x = Tensor::<2>::from_data([[1.0, 2.0], [3.0, 6.0]], &device);
/// bn.forward(x);
/// let (mean, var) = bn.running_stats().unwrap();
/// assert_eq!(mean.into_data().try_to_vec::<f32>().unwrap(), [2.0, 4.0]);
/// assert_eq!(var.into_data().try_to_vec::<f32>().unwrap(), [2.0, 8.0]); // unbiased
/// assert_eq!(bn.num_batches_tracked(), Some(1));
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct BatchNorm {
    /// Learnable per-channel scale (PyTorch's `weight`), `[C]`; `None` without `affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Learnable per-channel shift (PyTorch's `bias`), `[C]`; `None` without `affine`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Running mean, **unbiased** variance and `num_batches_tracked`; `None` without
    /// `track_running_stats`.
    pub running: Option<RunningStats>,
    /// Training mode (batch statistics, running statistics updated), decided per forward
    /// from the input's device ([`TrainingMode`]).
    pub training: TrainingMode,
    /// Number of channels.
    pub num_features: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Update weight of the running statistics; `None` for a cumulative average.
    #[module(skip)]
    pub momentum: Option<f64>,
    /// Accepted input ranks.
    #[module(skip)]
    pub input_rank: InputRank,
    /// Compute path.
    #[module(skip)]
    pub path: ComputePath,
}

/// One line in PyTorch's terms, as burn-nn's norm layers print: `BatchNorm {num_features: 3,
/// eps: 0.00001, momentum: 0.1, affine: true, track_running_stats: true, params: 12}`, with
/// `training: disabled` after `valid()`.
impl ModuleDisplay for BatchNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        display::with_running_stats(
            content,
            self.num_features,
            self.eps,
            &self.momentum,
            self.gamma.is_some(),
            self.running.is_some(),
            &self.training,
        )
    }
}

impl BatchNormConfig {
    /// PyTorch's `BatchNorm1d(num_features)`: inputs `[N, C]` or `[N, C, L]`.
    pub fn new_1d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D1)
    }

    /// PyTorch's `BatchNorm2d(num_features)`: inputs `[N, C, H, W]`.
    pub fn new_2d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D2)
    }

    /// PyTorch's `BatchNorm3d(num_features)`: inputs `[N, C, D, H, W]`.
    pub fn new_3d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D3)
    }

    /// Builds the layer: `gamma = 1`, `beta = 0`, `running_mean = 0`, `running_var = 1`,
    /// `num_batches_tracked = 0`.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `num_features` is zero, `eps` is negative or not
    /// finite, or `momentum` lies outside `[0, 1]`.
    pub fn try_init(&self, device: &Device) -> Result<BatchNorm, NormError> {
        check_nonzero("BatchNorm", "num_features", self.num_features)?;
        check_eps("BatchNorm", self.eps)?;
        check_momentum("BatchNorm", self.momentum)?;
        let c = self.num_features;
        let (gamma, beta) = params::affine(self.affine, c, device);
        Ok(BatchNorm {
            gamma,
            beta,
            running: RunningStats::tracked(self.track_running_stats, c, self.stats_dtype, device),
            training: TrainingMode::new(),
            num_features: c,
            eps: self.eps,
            momentum: self.momentum,
            input_rank: self.input_rank,
            path: self.path,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> BatchNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl BatchNorm {
    /// Normalizes `input`, see [`BatchNorm`].
    ///
    /// # Shapes
    /// - input: `[N, C, ...]`
    /// - output: `[N, C, ...]`
    ///
    /// # Errors
    /// - [`NormError::InvalidRank`]: the rank breaks the layer's [`InputRank`] rule.
    /// - [`NormError::TooFewValues`]: batch statistics over a single value per channel
    ///   (`N * spatial == 1`).
    /// - [`NormError::ChannelMismatch`]: `C != num_features` while the layer has
    ///   per-channel parameters or running statistics.
    /// - [`NormError::InvalidConfig`]: `eps == 0` while batch statistics are used.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        self.try_forward_then(input, None)
    }

    /// `activation(self.forward(input))` as one op on the fused path (see
    /// [`BatchNormAct`](crate::BatchNormAct)); the composed path applies the activation after.
    ///
    /// # Errors
    /// As [`try_forward`](Self::try_forward).
    pub fn try_forward_activated<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Activation,
    ) -> Result<Tensor<D>, NormError> {
        self.try_forward_then(input, Some(activation))
    }

    /// Normalizes `input`, then applies `activation` if there is one; half inputs in f32.
    pub(crate) fn try_forward_then<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Option<Activation>,
    ) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_then_f32(x, activation))
    }

    /// [`try_forward_then`](Self::try_forward_then) on an input of f32 or f64.
    fn try_forward_then_f32<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Option<Activation>,
    ) -> Result<Tensor<D>, NormError> {
        let shape = input.dims().to_vec();
        let training = self.training.trains_on(&input.device());
        let batch_stats = training || self.running.is_none();
        self.input_rank.check_batch_norm(&shape)?;
        let [n, _, spatial] = channel_major(&shape);
        if batch_stats && n * spatial == 1 {
            return Err(NormError::single_value_per_channel("BatchNorm", shape));
        }
        self.check_shape(&shape)?;
        if batch_stats {
            check_eps_for_batch_stats("BatchNorm", self.eps)?;
        }
        if n * spatial == 0 {
            // PyTorch: an empty batch leaves the statistics alone but is still counted.
            if training && let Some(running) = &self.running {
                running.count_batch();
            }
            return Ok(maybe_apply(activation, input));
        }

        let gamma = self.gamma.as_ref().map(Param::val);
        let beta = self.beta.as_ref().map(Param::val);
        if !batch_stats {
            let (mean, var) = self.running_stats().expect("checked above");
            return Ok(functional::batch_norm_eval(
                input, gamma, beta, mean, var, self.eps, activation, self.path,
            ));
        }

        let stats =
            functional::batch_norm_train(input, gamma, beta, self.eps, activation, self.path);
        if training {
            self.update_running_stats(stats.mean, stats.var_biased, n * spatial);
        }
        Ok(stats.output)
    }

    /// Checks `shape` against the layer's rank rule and channel count; returns the
    /// channel-major `[N, C, S]` view.
    pub(crate) fn check_shape(&self, shape: &[usize]) -> Result<[usize; 3], NormError> {
        self.input_rank.check_batch_norm(shape)?;
        let [n, c, spatial] = channel_major(shape);
        if c != self.num_features && (self.gamma.is_some() || self.running.is_some()) {
            return Err(NormError::wrong_channel_count(
                "BatchNorm",
                "num_features",
                self.num_features,
                c,
                shape,
            ));
        }
        Ok([n, c, spatial])
    }

    /// Counts a training batch and moves the running statistics (if tracked) towards its
    /// mean and the unbiased version of its biased variance over `count` values.
    pub(crate) fn update_running_stats(
        &self,
        mean: Tensor<1>,
        var_biased: Tensor<1>,
        count: usize,
    ) {
        if let Some(running) = &self.running {
            running.track_batch(mean, var_biased, count, self.momentum);
        }
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// `activation(self.forward(input))` as one op, see
    /// [`try_forward_activated`](Self::try_forward_activated).
    ///
    /// # Panics
    /// Where `try_forward_activated` returns an error, with its message.
    pub fn forward_activated<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Activation,
    ) -> Tensor<D> {
        self.try_forward_activated(input, activation)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Whether training is enabled: a forward on an autodiff device trains
    /// ([`TrainingMode`]).
    pub fn is_training(&self) -> bool {
        self.training.is_enabled()
    }

    /// The running mean and (unbiased) variance, if the layer tracks them.
    pub fn running_stats(&self) -> Option<(Tensor<1>, Tensor<1>)> {
        self.running.as_ref().map(RunningStats::current)
    }

    /// PyTorch's `num_batches_tracked`, if the layer tracks running statistics.
    pub fn num_batches_tracked(&self) -> Option<i64> {
        self.running.as_ref().map(RunningStats::count)
    }
}

#[cfg(test)]
mod tests;
