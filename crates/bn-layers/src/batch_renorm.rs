//! Batch Renormalization (Ioffe, 2017): BatchNorm whose training output is corrected towards
//! the running statistics, so that a model trained on small or non-i.i.d. batches evaluates
//! the way it trained.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param, RunningState};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::counter::BatchCounter;
use crate::error::{check_eps, check_eps_for_batch_stats, check_nonzero};
use crate::functional::{channel_major, scale_shift};
use crate::precision::{in_dtype, in_f32_if_half, statistics_dtype};
use crate::rank::check_channels_axis;
use crate::{NormError, TrainingMode, display, params};

/// Configuration of a [`BatchRenorm`] layer.
#[derive(Config, Debug)]
pub struct BatchRenormConfig {
    /// Number of channels `C`.
    pub num_features: usize,
    /// Added to the batch variance inside the square root, `σ_B = sqrt(Var_B[x] + eps)`.
    /// Default: `1e-5` (as this crate's BatchNorm).
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Update rate `α` of the running mean and standard deviation. Default: `0.01` (Keras's
    /// `renorm_momentum = 0.99`).
    #[config(default = 0.01)]
    pub momentum: f64,
    /// `r` is clipped to `[1 / r_max, r_max]` once the warm-up is over. Default: `3`.
    #[config(default = 3.0)]
    pub r_max: f64,
    /// `d` is clipped to `[-d_max, d_max]` once the warm-up is over. Default: `5`.
    #[config(default = 5.0)]
    pub d_max: f64,
    /// Training steps at the start with `r_max = 1` and `d_max = 0`: plain BatchNorm while the
    /// running statistics settle. Default: `5000` (the paper's, section 4.1).
    #[config(default = 5000)]
    pub warmup_steps: usize,
    /// The step at which `r_max` has grown linearly from 1 to its value. Default: `40000`.
    #[config(default = 40000)]
    pub r_max_steps: usize,
    /// The step at which `d_max` has grown linearly from 0 to its value. Default: `25000`.
    #[config(default = 25000)]
    pub d_max_steps: usize,
    /// Learn a per-channel scale `gamma` and shift `beta`. Default: `true`.
    #[config(default = true)]
    pub affine: bool,
    /// The dtype of the running mean and standard deviation; `None` keeps them in the
    /// device's default float, or in f32 where that default is f16 or bf16. Default: `None`.
    #[config(default = "None")]
    pub stats_dtype: Option<FloatDType>,
}

/// Batch Renormalization over the channel axis of `[N, C, ...]` inputs.
///
/// Based on the paper [Batch Renormalization: Towards Reducing Minibatch Dependence in
/// Batch-Normalized Models](https://arxiv.org/abs/1702.03275) (Ioffe, 2017), Algorithm 1.
/// In training mode, with `μ_B` and `σ_B = sqrt(Var_B[x] + eps)` the batch's per-channel
/// mean and standard deviation (biased variance) and `μ`, `σ` the running ones:
///
/// `r = clip(σ_B / σ, 1 / r_max, r_max)`, `d = clip((μ_B - μ) / σ, -d_max, d_max)`,
/// `y = ((x - μ_B) / σ_B * r + d) * gamma + beta`,
///
/// where `r` and `d` are constants to the backward pass (`stop_gradient`); then
/// `μ += momentum * (μ_B - μ)` and `σ += momentum * (σ_B - σ)`. With `r = 1` and `d = 0`
/// this is BatchNorm; once `r` and `d` are unclipped the output is
/// `(x - μ) / σ * gamma + beta`, what evaluation computes. `r_max` and `d_max` follow the
/// paper's warm-up: 1 and 0 for `warmup_steps` training steps, then growing linearly to their
/// values at `r_max_steps` and `d_max_steps` (the step is `num_batches_tracked` before the
/// batch). Computed with Burn's tensor ops on every backend.
///
/// Training versus evaluation is decided at each forward as for
/// [`BatchNorm`](crate::BatchNorm) ([`TrainingMode`]).
///
/// # Shapes
/// - input: `[N, C, ...]` (rank ≥ 2)
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::BatchRenormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let layer = BatchRenormConfig::new(3).with_warmup_steps(100).init(&device);
/// let y = layer.forward(Tensor::<4>::ones([2, 3, 4, 4], &device));
/// assert_eq!(y.dims(), [2, 3, 4, 4]);
/// assert_eq!(layer.num_batches_tracked(), 1);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct BatchRenorm {
    /// Learnable per-channel scale, `[C]`; `None` without `affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Learnable per-channel shift, `[C]`; `None` without `affine`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Running mean `μ`, `[C]`; starts at 0.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running standard deviation `σ` (with `eps` inside), `[C]`; starts at 1.
    pub running_std: RunningState<Tensor<1>>,
    /// Training steps taken, which drive the warm-up of `r_max` and `d_max`.
    pub num_batches_tracked: BatchCounter,
    /// Training mode, decided per forward from the input's device ([`TrainingMode`]).
    pub training: TrainingMode,
    /// Number of channels.
    pub num_features: usize,
    /// Added to the batch variance inside the square root.
    pub eps: f64,
    /// Update rate of the running statistics.
    pub momentum: f64,
    /// The clip of `r` after the warm-up.
    pub r_max: f64,
    /// The clip of `d` after the warm-up.
    pub d_max: f64,
    /// Steps of plain BatchNorm at the start.
    pub warmup_steps: usize,
    /// The step at which `r_max` is reached.
    pub r_max_steps: usize,
    /// The step at which `d_max` is reached.
    pub d_max_steps: usize,
}

/// One line: `BatchRenorm {num_features: 3, eps: 0.00001, momentum: 0.01, r_max: 3, d_max: 5,
/// warmup_steps: 5000, affine: true, params: 12}`.
impl ModuleDisplay for BatchRenorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("num_features", &self.num_features)
            .add("eps", &self.eps)
            .add("momentum", &self.momentum)
            .add("r_max", &self.r_max)
            .add("d_max", &self.d_max)
            .add("warmup_steps", &self.warmup_steps)
            .add("affine", &self.gamma.is_some())
            .optional()
    }
}

impl BatchRenormConfig {
    /// Builds the layer: `gamma = 1`, `beta = 0`, running mean 0 and standard deviation 1.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `num_features` is zero, `eps` is negative or not
    /// finite, `momentum` lies outside `[0, 1]`, `r_max < 1` or `d_max < 0`.
    pub fn try_init(&self, device: &Device) -> Result<BatchRenorm, NormError> {
        const LAYER: &str = "BatchRenorm";
        check_nonzero(LAYER, "num_features", self.num_features)?;
        check_eps(LAYER, self.eps)?;
        let invalid = |reason: String| Err(NormError::invalid_config(LAYER, reason));
        if !(0.0..=1.0).contains(&self.momentum) {
            return invalid(format!(
                "momentum must be within [0, 1], got {}",
                self.momentum
            ));
        }
        if !(self.r_max >= 1.0 && self.r_max.is_finite()) {
            return invalid(format!("r_max must be finite and >= 1, got {}", self.r_max));
        }
        if !(self.d_max >= 0.0 && self.d_max.is_finite()) {
            return invalid(format!("d_max must be finite and >= 0, got {}", self.d_max));
        }
        let c = self.num_features;
        let (gamma, beta) = params::affine(self.affine, c, device);
        let dtype = statistics_dtype(self.stats_dtype, device);
        let state = |value: f64| RunningState::new(Tensor::full([c], value, (device, dtype)));
        Ok(BatchRenorm {
            gamma,
            beta,
            running_mean: state(0.0),
            running_std: state(1.0),
            num_batches_tracked: BatchCounter::new(0, device),
            training: TrainingMode::new(),
            num_features: c,
            eps: self.eps,
            momentum: self.momentum,
            r_max: self.r_max,
            d_max: self.d_max,
            warmup_steps: self.warmup_steps,
            r_max_steps: self.r_max_steps,
            d_max_steps: self.d_max_steps,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> BatchRenorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl BatchRenorm {
    /// Normalizes `input`, see [`BatchRenorm`].
    ///
    /// # Errors
    /// - [`NormError::InvalidRank`]: rank below 2.
    /// - [`NormError::ChannelMismatch`]: `C != num_features`.
    /// - [`NormError::TooFewValues`]: training on a single value per channel.
    /// - [`NormError::InvalidConfig`]: `eps == 0` in training.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        let shape = dims.to_vec();
        check_channels_axis("BatchRenorm", &shape)?;
        let [n, c, spatial] = channel_major(&shape);
        if c != self.num_features {
            return Err(NormError::wrong_channel_count(
                "BatchRenorm",
                "num_features",
                self.num_features,
                c,
                &shape,
            ));
        }
        let (device, dtype) = (input.device(), input.dtype());
        let x = input.reshape([n, c, spatial]);
        let running = |state: &RunningState<Tensor<1>>| {
            in_dtype(state.value_sync().to_device(&device), dtype).reshape([1, c, 1])
        };
        let (mu, sigma) = (running(&self.running_mean), running(&self.running_std));
        let param = |p: &Param<Tensor<1>>| in_dtype(p.val(), dtype);
        let gamma = self.gamma.as_ref().map(param);
        let beta = self.beta.as_ref().map(param);
        if !self.training.trains_on(&device) {
            let y = (x - mu) / sigma;
            return Ok(scale_shift(y, gamma, beta).reshape(dims));
        }
        if n * spatial == 1 {
            return Err(NormError::single_value_per_channel("BatchRenorm", shape));
        }
        check_eps_for_batch_stats("BatchRenorm", self.eps)?;

        let (r_max, d_max) = self.limits(self.num_batches_tracked.count());
        let mean_b = x.clone().mean_dims(&[0, 2]);
        let centered = x - mean_b.clone();
        let std_b = centered
            .clone()
            .square()
            .mean_dims(&[0, 2])
            .add_scalar(self.eps)
            .sqrt();
        let r = (std_b.clone().detach() / sigma.clone()).clamp(1.0 / r_max, r_max);
        let d = ((mean_b.clone().detach() - mu.clone()) / sigma.clone()).clamp(-d_max, d_max);
        let y = centered / std_b.clone() * r + d;

        let update = |state: &RunningState<Tensor<1>>, running: Tensor<3>, batch: Tensor<3>| {
            let moved = running.clone() + (batch.detach() - running).mul_scalar(self.momentum);
            let stored = state.value_sync().dtype();
            state.update(in_dtype(moved.reshape([c]).detach(), stored));
        };
        update(&self.running_mean, mu, mean_b);
        update(&self.running_std, sigma, std_b);
        self.num_batches_tracked.increment();
        Ok(scale_shift(y, gamma, beta).reshape(dims))
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// `(r_max, d_max)` at training step `step`: 1 and 0 during the warm-up, then linear
    /// growth to the configured values at `r_max_steps` and `d_max_steps`.
    pub fn limits(&self, step: i64) -> (f64, f64) {
        let step = step.max(0) as f64;
        let warmup = self.warmup_steps as f64;
        if step < warmup {
            return (1.0, 0.0);
        }
        let progress = |end: usize| {
            let span = end as f64 - warmup;
            if span <= 0.0 {
                1.0
            } else {
                ((step - warmup) / span).min(1.0)
            }
        };
        (
            1.0 + (self.r_max - 1.0) * progress(self.r_max_steps),
            self.d_max * progress(self.d_max_steps),
        )
    }

    /// The running mean and standard deviation.
    pub fn running_stats(&self) -> (Tensor<1>, Tensor<1>) {
        (
            self.running_mean.value_sync(),
            self.running_std.value_sync(),
        )
    }

    /// Training steps taken so far.
    pub fn num_batches_tracked(&self) -> i64 {
        self.num_batches_tracked.count()
    }
}
