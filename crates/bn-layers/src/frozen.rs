//! Frozen BatchNorm: fixed statistics and affine, nothing learned, as torchvision's
//! `FrozenBatchNorm2d`, either as its own layer ([`FrozenBatchNorm`]) or by freezing every
//! BatchNorm of any model in place ([`freeze_batchnorm`]).

use burn::module::{Content, DisplaySettings, Flag, Module, ModuleDisplay, ModuleMapper, Param};
use burn::tensor::Tensor;

use crate::functional::{channel_major, scale_shift};
use crate::module_path::ModulePath;
use crate::precision::{in_dtype, in_f32_if_half};
use crate::rank::check_channels_axis;
use crate::{BatchNorm, NormError, display};

/// torchvision's `FrozenBatchNorm2d`: BatchNorm with every statistic and parameter fixed,
/// the same in training and evaluation:
///
/// `y = x * scale + shift`, `scale = weight / sqrt(running_var + eps)`,
/// `shift = bias - running_mean * scale`,
///
/// per channel of `[N, C, ...]` inputs. The four vectors are parameters that require no
/// gradient (so records keep them, as PyTorch's state dict keeps its buffers) and no optimizer
/// changes. Used where a pretrained backbone is fine-tuned with batches too small for
/// BatchNorm's statistics (torchvision's detection models).
///
/// # Shapes
/// - input: `[N, C, ...]` (rank ≥ 2)
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::{BatchNormConfig, FrozenBatchNorm};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let frozen = FrozenBatchNorm::from_batch_norm(&BatchNormConfig::new_2d(3).init(&device));
/// let y = frozen.forward(Tensor::<4>::ones([2, 3, 4, 4], &device));
/// // running mean 0, variance 1: y = x / sqrt(1 + 1e-5)
/// assert!((y.mean().into_scalar::<f32>() - 0.999995).abs() < 1e-6);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct FrozenBatchNorm {
    /// PyTorch's `weight` (`γ`), `[C]`; no gradient.
    pub weight: Param<Tensor<1>>,
    /// PyTorch's `bias` (`β`), `[C]`; no gradient.
    pub bias: Param<Tensor<1>>,
    /// `running_mean`, `[C]`; no gradient.
    pub running_mean: Param<Tensor<1>>,
    /// `running_var` (unbiased, as PyTorch's), `[C]`; no gradient.
    pub running_var: Param<Tensor<1>>,
    /// Added to the variance before the square root.
    pub eps: f64,
}

/// One line: `FrozenBatchNorm {num_features: 3, eps: 0.00001}`.
impl ModuleDisplay for FrozenBatchNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("num_features", &self.weight.dims()[0])
            .add("eps", &self.eps)
            .optional()
    }
}

impl FrozenBatchNorm {
    /// The frozen form of `bn`: its `γ`, `β` (1 and 0 without `affine`), running statistics
    /// (0 and 1 without `track_running_stats`) and `eps`.
    pub fn from_batch_norm(bn: &BatchNorm) -> Self {
        let device = bn
            .gamma
            .as_ref()
            .map(|gamma| gamma.val().device())
            .or_else(|| bn.running_stats().map(|(mean, _)| mean.device()))
            .unwrap_or_default();
        let c = bn.num_features;
        let fixed = |value: Option<Tensor<1>>, default: f64| {
            let tensor = value.unwrap_or_else(|| Tensor::full([c], default, &device));
            Param::from_tensor(tensor.detach()).set_require_grad(false)
        };
        let (mean, var) = bn.running_stats().unzip();
        Self {
            weight: fixed(bn.gamma.as_ref().map(Param::val), 1.0),
            bias: fixed(bn.beta.as_ref().map(Param::val), 0.0),
            running_mean: fixed(mean, 0.0),
            running_var: fixed(var, 1.0),
            eps: bn.eps,
        }
    }

    /// Normalizes `input` with the fixed statistics and affine, see [`FrozenBatchNorm`].
    ///
    /// # Errors
    /// [`NormError::InvalidRank`] below rank 2, [`NormError::ChannelMismatch`] when `C`
    /// differs from the layer's.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        check_channels_axis("FrozenBatchNorm", &dims)?;
        let [n, c, spatial] = channel_major(&dims);
        let channels = self.weight.dims()[0];
        if c != channels {
            return Err(NormError::wrong_channel_count(
                "FrozenBatchNorm",
                "num_features",
                channels,
                c,
                &dims,
            ));
        }
        let fixed = |param: &Param<Tensor<1>>| in_dtype(param.val(), input.dtype());
        let scale = fixed(&self.weight) / fixed(&self.running_var).add_scalar(self.eps).sqrt();
        let shift = fixed(&self.bias) - fixed(&self.running_mean) * scale.clone();
        let y = scale_shift(input.reshape([n, c, spatial]), Some(scale), Some(shift));
        Ok(y.reshape(dims))
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

/// Freezes every [`BatchNorm`] in `model`, whatever the model (those inside
/// [`BatchNormAct`](crate::BatchNormAct), [`SyncBatchNorm`](crate::SyncBatchNorm) and
/// [`GhostBatchNorm`](crate::GhostBatchNorm) too), keeping its types: torchvision's
/// `FrozenBatchNorm2d` behaviour in place. Each BatchNorm's training flags are turned off, so
/// it normalizes with its running statistics in every mode and never updates them (Burn's
/// [`Module::train`] keeps the flags as set here; [`set_training`](crate::set_training) would
/// switch them back on), and its `γ` and `β` no longer require gradients, so no optimizer
/// changes them. Every other layer and parameter trains as before.
///
/// A BatchNorm built without `track_running_stats` has no statistics to freeze and keeps
/// using its batch's, as PyTorch's would.
///
/// # Example
/// ```
/// use bn_layers::{BatchNormConfig, freeze_batchnorm};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let bn = freeze_batchnorm(BatchNormConfig::new_1d(2).init(&device));
/// bn.forward(Tensor::<2>::from_data([[1.0, 2.0], [3.0, 6.0]], &device));
/// assert_eq!(bn.num_batches_tracked(), Some(0)); // running statistics untouched
/// assert!(!bn.gamma.unwrap().is_require_grad());
/// ```
pub fn freeze_batchnorm<M: Module>(model: M) -> M {
    model.map(&mut FreezeBatchNorm::default())
}

/// The mapper behind [`freeze_batchnorm`].
#[derive(Default)]
struct FreezeBatchNorm {
    path: ModulePath,
}

impl ModuleMapper for FreezeBatchNorm {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.path.field_of("BatchNorm") {
            Some("gamma" | "beta") => param.set_require_grad(false),
            _ => param,
        }
    }

    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        match self.path.field_of_submodule("BatchNorm", "training") {
            Some(_) => flag.with_value(false),
            None => flag,
        }
    }
}

#[cfg(test)]
mod tests;
