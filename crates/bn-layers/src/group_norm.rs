//! Group normalization with PyTorch's `nn.GroupNorm` semantics.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{Device, Tensor};

use crate::display;
use crate::error::{check_eps, check_nonzero};
use crate::functional::{self, channel_major};
use crate::precision::in_f32_if_half;
use crate::rank::check_channels_axis;
use crate::{ComputePath, NormError, params};

/// Configuration of a [`GroupNorm`] layer. Field names and defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct GroupNormConfig {
    /// Number of groups the channels are split into.
    pub num_groups: usize,
    /// Number of channels `C`; must be divisible by `num_groups`.
    pub num_channels: usize,
    /// Added to the variance before the square root. Default: `1e-5`.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Learn a per-channel scale `gamma` and shift `beta`. Default: `true`.
    #[config(default = true)]
    pub affine: bool,
    /// One fused op or the composed textbook algorithm. Default: [`ComputePath::Fused`].
    #[config(default = "ComputePath::Fused")]
    pub path: ComputePath,
}

/// Group normalization: the channels of each sample are split into `num_groups` groups and
/// every group is normalized over its channels and spatial positions.
///
/// Based on the paper [Group Normalization](https://arxiv.org/abs/1803.08494)
/// (Wu & He, 2018).
///
/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`
///
/// with one mean and **biased** variance per `(sample, group)` over `C / G` channels times
/// every spatial position, and a per-channel `gamma`/`beta`. One group is LayerNorm over
/// `[C, ...]` with per-channel affine; `C` groups is InstanceNorm. No running statistics:
/// training and evaluation give the same output.
///
/// # Shapes
/// - input: `[N, C, ...]` (rank ≥ 2)
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::GroupNormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let gn = GroupNormConfig::new(2, 6).init(&device); // nn.GroupNorm(2, 6)
/// let y = gn.forward(Tensor::<4>::ones([1, 6, 4, 4], &device));
/// assert_eq!(y.dims(), [1, 6, 4, 4]);
/// assert!(GroupNormConfig::new(4, 6).try_init(&device).is_err()); // 6 % 4 != 0
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct GroupNorm {
    /// Learnable per-channel scale, `[C]`; `None` without `affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Learnable per-channel shift, `[C]`; `None` without `affine`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Number of groups.
    pub num_groups: usize,
    /// Number of channels.
    pub num_channels: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Compute path.
    #[module(skip)]
    pub path: ComputePath,
}

/// One line in PyTorch's terms, as burn-nn's norm layers print:
/// `GroupNorm {num_groups: 2, num_channels: 4, eps: 0.00001, affine: true, params: 8}`.
impl ModuleDisplay for GroupNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("num_groups", &self.num_groups)
            .add("num_channels", &self.num_channels)
            .add("eps", &self.eps)
            .add("affine", &self.gamma.is_some())
            .optional()
    }
}

impl GroupNormConfig {
    /// Builds the layer with `gamma = 1` and `beta = 0`.
    ///
    /// # Errors
    /// - [`NormError::GroupsNotDivisible`]: `num_channels % num_groups != 0`.
    /// - [`NormError::InvalidConfig`]: zero groups or channels, `eps` negative or not finite.
    pub fn try_init(&self, device: &Device) -> Result<GroupNorm, NormError> {
        check_nonzero("GroupNorm", "num_groups", self.num_groups)?;
        check_nonzero("GroupNorm", "num_channels", self.num_channels)?;
        if !self.num_channels.is_multiple_of(self.num_groups) {
            return Err(NormError::GroupsNotDivisible {
                num_groups: self.num_groups,
                num_channels: self.num_channels,
            });
        }
        check_eps("GroupNorm", self.eps)?;
        let c = self.num_channels;
        let (gamma, beta) = params::affine(self.affine, c, device);
        Ok(GroupNorm {
            gamma,
            beta,
            num_groups: self.num_groups,
            num_channels: c,
            eps: self.eps,
            path: self.path,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> GroupNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl GroupNorm {
    /// Normalizes `input`, see [`GroupNorm`].
    ///
    /// # Shapes
    /// - input: `[N, C, ...]`
    /// - output: the input's shape.
    ///
    /// # Errors
    /// - [`NormError::InvalidRank`]: rank below 2.
    /// - [`NormError::ChannelMismatch`]: `C` not divisible by `num_groups`, or (with
    ///   `affine`) `C != num_channels`.
    /// - [`NormError::TooFewValues`]: `N * C / G * spatial == 1`, as PyTorch checks it.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        let shape = dims.to_vec();
        check_channels_axis("GroupNorm", &shape)?;
        let [n, c, spatial] = channel_major(&dims);
        let g = self.num_groups;
        if !c.is_multiple_of(g) {
            return Err(NormError::ChannelMismatch {
                layer: "GroupNorm",
                reason: format!("{c} input channels are not divisible by num_groups={g}"),
                shape,
            });
        }
        if self.gamma.is_some() && c != self.num_channels {
            return Err(NormError::wrong_channel_count(
                "GroupNorm",
                "num_channels",
                self.num_channels,
                c,
                &shape,
            ));
        }
        if n * (c / g) * spatial == 1 {
            return Err(NormError::TooFewValues {
                layer: "GroupNorm",
                per: "value per group",
                hint: "use fewer groups, or an input with more channels or spatial elements per sample",
                shape,
            });
        }
        if n * c * spatial == 0 {
            return Ok(input);
        }
        let gamma = self.gamma.as_ref().map(Param::val);
        let beta = self.beta.as_ref().map(Param::val);
        Ok(functional::group_norm(input, gamma, beta, g, self.eps, self.path).output)
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

#[cfg(test)]
mod tests {
    //! Expected values: PyTorch 2.x float64 output printed by
    //! `scripts/semantics_probe.py` (sections 5 and 8), or computed by hand.

    use super::*;
    use crate::test_util::{assert_close, tensor, train_device};

    #[test]
    fn nan_poisons_only_its_own_group() {
        let device = train_device();
        let gn = GroupNormConfig::new(1, 2).init(&device);
        let x = tensor(
            [1.0, 2.0, f64::NAN, 3.0, 2.0, 5.0, 4.0, 1.0],
            [4, 2],
            &device,
        );
        let y: Vec<f64> = gn.forward(x).into_data().iter::<f64>().collect();
        assert!(y[2].is_nan() && y[3].is_nan());
        let want = [-0.9999800005999799, 0.9999800005999799];
        assert!(
            (y[0] - want[0]).abs() < 1e-6 && (y[1] - want[1]).abs() < 1e-6,
            "{y:?}"
        );
        assert!((y[6] - 0.9999977777851852).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn groups_are_normalized_separately_with_per_channel_affine() {
        // By hand: sample [0, 2 | 10, 14] with 2 groups of 2 channels (spatial 1):
        // group 0 has mean 1, var 1; group 1 mean 12, var 4.
        let device = train_device();
        let mut gn = GroupNormConfig::new(2, 4).init(&device);
        gn.gamma = Some(Param::from_tensor(tensor(
            [1.0, 2.0, 3.0, 4.0],
            [4],
            &device,
        )));
        gn.beta = Some(Param::from_tensor(tensor(
            [0.0, 0.0, 1.0, 1.0],
            [4],
            &device,
        )));
        let y = gn.forward(tensor([0.0, 2.0, 10.0, 14.0], [1, 4], &device));
        let a = 1.0 / (1.0f64 + 1e-5).sqrt();
        let b = 2.0 / (4.0f64 + 1e-5).sqrt();
        assert_close(y, &[-a, 2.0 * a, 1.0 - 3.0 * b, 1.0 + 4.0 * b], 1e-6);
    }

    #[test]
    fn errors_match_pytorch_checks() {
        let device = train_device();
        let err = GroupNormConfig::new(4, 6).try_init(&device).unwrap_err();
        assert_eq!(err.kind(), "GroupsNotDivisible");
        assert_eq!(
            err.to_string(),
            "GroupNorm: num_channels (6) must be divisible by num_groups (4)"
        );
        let gn = GroupNormConfig::new(2, 6).init(&device);
        let not_divisible = gn.try_forward(Tensor::<3>::ones([2, 5, 5], &device));
        assert_eq!(not_divisible.unwrap_err().kind(), "ChannelMismatch");
        let wrong = gn.try_forward(Tensor::<3>::ones([2, 4, 5], &device));
        assert_eq!(wrong.unwrap_err().kind(), "ChannelMismatch");
        let rank = gn.try_forward(Tensor::<1>::ones([6], &device));
        assert_eq!(rank.unwrap_err().kind(), "InvalidRank");
        let one = GroupNormConfig::new(6, 6).init(&device);
        let err = one.try_forward(Tensor::<2>::ones([1, 6], &device));
        assert_eq!(err.unwrap_err().kind(), "TooFewValues");
        // PyTorch lets one element per group through when the batch has more than one sample.
        assert!(one.try_forward(Tensor::<2>::ones([4, 6], &device)).is_ok());
    }

    #[test]
    fn displays_in_pytorch_terms() {
        // 8 parameters: γ and β over 4 channels.
        let gn = GroupNormConfig::new(2, 4).init(&train_device());
        assert_eq!(
            format!("{gn}"),
            "GroupNorm {num_groups: 2, num_channels: 4, eps: 0.00001, affine: true, params: 8}"
        );
    }
}
