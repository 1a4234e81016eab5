//! Instance normalization with PyTorch's `nn.InstanceNorm1d/2d/3d` semantics.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::display;
use crate::error::{check_eps, check_momentum, check_nonzero};
use crate::functional;
use crate::precision::in_f32_if_half;
use crate::training::TrainingMode;
use crate::{ComputePath, InputRank, NormError, RunningStats, params};

/// Configuration of an [`InstanceNorm`] layer. Field names and defaults are PyTorch's
/// (note `affine` and `track_running_stats` default to `false`, unlike BatchNorm).
#[derive(Config, Debug)]
pub struct InstanceNormConfig {
    /// Number of channels `C`.
    pub num_features: usize,
    /// Added to the variance before the square root. Default: `1e-5`.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Weight of the newest batch in the running statistics. PyTorch passes `momentum=None`
    /// on as `0.0`: the running statistics then never move. Default: `0.1`.
    #[config(default = 0.1)]
    pub momentum: f64,
    /// Learn a per-channel scale `gamma` and shift `beta`. Default: `false`.
    #[config(default = false)]
    pub affine: bool,
    /// Keep running statistics (the batch average of the per-instance statistics) and use
    /// them in evaluation. Default: `false`.
    #[config(default = false)]
    pub track_running_stats: bool,
    /// Which input ranks are accepted ([`InputRank::D2`] is PyTorch's `InstanceNorm2d`, which
    /// also takes unbatched `[C, H, W]`). Default: [`InputRank::Any`] (batched only).
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

/// Instance normalization: every channel of every sample is normalized over its own
/// spatial positions.
///
/// Based on the paper [Instance Normalization: The Missing Ingredient for Fast
/// Stylization](https://arxiv.org/abs/1607.08022) (Ulyanov, Vedaldi & Lempitsky, 2016).
///
/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`
///
/// with one mean and **biased** variance per `(sample, channel)`. With
/// `track_running_stats`, training moves the running statistics towards the batch average of
/// the per-instance means and **unbiased** variances, and evaluation normalizes with them.
/// `num_batches_tracked` exists then, as in PyTorch, but is never incremented.
///
/// # Shapes
/// - input: `[N, C, ...]`, or unbatched `[C, ...]` under a `D1`/`D2`/`D3` [`InputRank`].
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::InstanceNormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let layer = InstanceNormConfig::new_2d(3).init(&device); // nn.InstanceNorm2d(3)
/// let y = layer.forward(Tensor::<3>::ones([3, 8, 8], &device)); // unbatched [C, H, W]
/// assert_eq!(y.dims(), [3, 8, 8]);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct InstanceNorm {
    /// Learnable per-channel scale, `[C]`; `None` without `affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Learnable per-channel shift, `[C]`; `None` without `affine`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Running mean and unbiased variance; `None` without `track_running_stats`. Its
    /// `num_batches_tracked` is kept for parity with PyTorch's state dict and never
    /// incremented.
    pub running: Option<RunningStats>,
    /// Training mode (instance statistics, running statistics updated), decided per forward
    /// from the input's device ([`TrainingMode`]).
    pub training: TrainingMode,
    /// Number of channels.
    pub num_features: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Update weight of the running statistics.
    pub momentum: f64,
    /// Accepted input ranks.
    #[module(skip)]
    pub input_rank: InputRank,
    /// Compute path.
    #[module(skip)]
    pub path: ComputePath,
}

/// One line in PyTorch's terms, as [`BatchNorm`](crate::BatchNorm)'s.
impl ModuleDisplay for InstanceNorm {
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

impl InstanceNormConfig {
    /// PyTorch's `InstanceNorm1d(num_features)`: inputs `[N, C, L]` or `[C, L]`.
    pub fn new_1d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D1)
    }

    /// PyTorch's `InstanceNorm2d(num_features)`: inputs `[N, C, H, W]` or `[C, H, W]`.
    pub fn new_2d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D2)
    }

    /// PyTorch's `InstanceNorm3d(num_features)`: inputs `[N, C, D, H, W]` or `[C, D, H, W]`.
    pub fn new_3d(num_features: usize) -> Self {
        Self::new(num_features).with_input_rank(InputRank::D3)
    }

    /// Builds the layer: `gamma = 1`, `beta = 0`, `running_mean = 0`, `running_var = 1`.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `num_features` is zero, `eps` is negative or not
    /// finite, or `momentum` lies outside `[0, 1]`.
    pub fn try_init(&self, device: &Device) -> Result<InstanceNorm, NormError> {
        check_nonzero("InstanceNorm", "num_features", self.num_features)?;
        check_eps("InstanceNorm", self.eps)?;
        check_momentum("InstanceNorm", Some(self.momentum))?;
        let c = self.num_features;
        let (gamma, beta) = params::affine(self.affine, c, device);
        Ok(InstanceNorm {
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
    pub fn init(&self, device: &Device) -> InstanceNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl InstanceNorm {
    /// Normalizes `input`, see [`InstanceNorm`].
    ///
    /// # Shapes
    /// - input: `[N, C, ...]` or unbatched `[C, ...]`
    /// - output: the input's shape.
    ///
    /// # Errors
    /// - [`NormError::InvalidRank`]: the rank breaks the layer's [`InputRank`] rule.
    /// - [`NormError::ChannelMismatch`]: `C != num_features` while the layer has
    ///   per-channel parameters or running statistics.
    /// - [`NormError::TooFewValues`]: instance statistics over a single spatial position.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        let shape = dims.to_vec();
        let unbatched = self.input_rank.check_instance_norm(&shape)?;
        let (n, channel_dims) = match unbatched {
            true => (1, &dims[..]),
            false => (dims[0], &dims[1..]),
        };
        let c = channel_dims[0];
        let spatial: usize = channel_dims[1..].iter().product();
        if c != self.num_features && (self.gamma.is_some() || self.running.is_some()) {
            return Err(NormError::wrong_channel_count(
                "InstanceNorm",
                "num_features",
                self.num_features,
                c,
                &shape,
            ));
        }
        let training = self.training.trains_on(&input.device());
        let instance_stats = training || self.running.is_none();
        if instance_stats && spatial == 1 {
            return Err(NormError::TooFewValues {
                layer: "InstanceNorm",
                per: "spatial element",
                hint: "instance statistics need more than one spatial element; with track_running_stats, evaluation mode uses the running statistics instead",
                shape,
            });
        }
        if n * c * spatial == 0 {
            return Ok(input);
        }

        let gamma = self.gamma.as_ref().map(Param::val);
        let beta = self.beta.as_ref().map(Param::val);
        let x = input.reshape([n, c, spatial]);
        if !instance_stats {
            let (mean, var) = self.running_stats().expect("checked above");
            let y =
                functional::batch_norm_eval(x, gamma, beta, mean, var, self.eps, None, self.path);
            return Ok(y.reshape(dims));
        }

        // GroupNorm with one group per channel: one statistic per (sample, channel).
        let stats = functional::group_norm(x, gamma, beta, c, self.eps, self.path);
        if training && let Some(running) = &self.running {
            let batch_average = |stat: Tensor<1>| stat.reshape([n, c]).mean_dim(0).reshape([c]);
            running.blend_batch(
                batch_average(stats.mean),
                batch_average(stats.var_biased),
                spatial,
                self.momentum,
            );
        }
        Ok(stats.output.reshape(dims))
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
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

    /// PyTorch's `num_batches_tracked` (always 0 for InstanceNorm), if tracked.
    pub fn num_batches_tracked(&self) -> Option<i64> {
        self.running.as_ref().map(RunningStats::count)
    }
}

#[cfg(test)]
mod tests {
    //! Behavior checked against `scripts/semantics_probe.py` (section 9) and its
    //! output; numbers computed by hand.

    use super::*;
    use crate::test_util::{assert_close, tensor, train_device};

    #[test]
    fn each_instance_is_normalized_over_its_positions() {
        // By hand: rows (1, 3), (10, 20) -> means 2, 15; biased variances 1, 25.
        let device = train_device();
        let layer = InstanceNormConfig::new_1d(2).init(&device);
        let y = layer.forward(tensor([1.0, 3.0, 10.0, 20.0], [1, 2, 2], &device));
        let a = 1.0 / (1.0f64 + 1e-5).sqrt();
        let b = 5.0 / (25.0f64 + 1e-5).sqrt();
        assert_close(y, &[-a, a, -b, b], 1e-6);
    }

    #[test]
    fn running_statistics_average_instances_and_never_count() {
        // By hand: instances (1, 3) and (5, 9) of channel 0: means 2 and 7 (average 4.5),
        // unbiased variances 2 and 8 (average 5). Channel 1 is constant 0.
        let device = train_device();
        let layer = InstanceNormConfig::new_1d(2)
            .with_track_running_stats(true)
            .init(&device);
        let x = tensor([1.0, 3.0, 0.0, 0.0, 5.0, 9.0, 0.0, 0.0], [2, 2, 2], &device);
        layer.forward(x);
        let (mean, var) = layer.running_stats().unwrap();
        assert_close(mean, &[0.45, 0.0], 1e-6);
        assert_close(var, &[0.9 + 0.5, 0.9], 1e-6);
        assert_eq!(layer.num_batches_tracked(), Some(0));
        // Evaluation uses them, even for a single position.
        let eval = crate::set_training(layer, false);
        let y = eval.forward(tensor([0.45, 0.0], [1, 2, 1], &device));
        assert_close(y, &[0.0, 0.0], 1e-6);
    }

    #[test]
    fn unbatched_inputs_follow_the_rank_rule() {
        let device = train_device();
        // InstanceNorm1d on 2D input is unbatched [C, L]: here C = 4 although num_features = 3
        // (allowed without affine or running statistics, as in PyTorch).
        let layer = InstanceNormConfig::new_1d(3).init(&device);
        assert_eq!(
            layer.forward(Tensor::<2>::ones([4, 3], &device)).dims(),
            [4, 3]
        );
        let in2d = InstanceNormConfig::new_2d(3).init(&device);
        assert_eq!(
            in2d.forward(Tensor::<3>::ones([3, 4, 4], &device)).dims(),
            [3, 4, 4]
        );
        let err = in2d
            .try_forward(Tensor::<2>::ones([2, 3], &device))
            .unwrap_err();
        assert_eq!(err.kind(), "InvalidRank");
        let err = in2d
            .try_forward(Tensor::<4>::ones([2, 3, 1, 1], &device))
            .unwrap_err();
        assert_eq!(err.kind(), "TooFewValues");
    }

    #[test]
    fn channel_checks_apply_only_with_per_channel_state() {
        let device = train_device();
        let x = Tensor::<4>::ones([2, 4, 5, 5], &device);
        assert!(
            InstanceNormConfig::new_2d(3)
                .init(&device)
                .try_forward(x.clone())
                .is_ok()
        );
        let affine = InstanceNormConfig::new_2d(3)
            .with_affine(true)
            .init(&device);
        assert_eq!(
            affine.try_forward(x.clone()).unwrap_err().kind(),
            "ChannelMismatch"
        );
        let tracked = InstanceNormConfig::new_2d(3)
            .with_track_running_stats(true)
            .init(&device);
        assert_eq!(
            tracked.try_forward(x).unwrap_err().kind(),
            "ChannelMismatch"
        );
    }

    #[test]
    fn displays_in_pytorch_terms() {
        let norm = InstanceNormConfig::new(3).init(&train_device());
        assert_eq!(
            format!("{norm}"),
            "InstanceNorm {num_features: 3, eps: 0.00001, momentum: 0.1, affine: false, \
             track_running_stats: false}"
        );
    }
}
