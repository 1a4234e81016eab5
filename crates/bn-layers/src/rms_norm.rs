//! Root-mean-square normalization with PyTorch's `nn.RMSNorm` semantics.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{DType, Device, Tensor};

use crate::display;
use crate::error::check_eps;
use crate::normalized_shape;
use crate::precision::{in_dtype, in_f32_if_half};
use crate::{NormError, params};

/// Configuration of an [`RmsNorm`] layer. Field names and defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct RmsNormConfig {
    /// The trailing dimensions to normalize over, e.g. `[d_model]`.
    pub normalized_shape: Vec<usize>,
    /// Added to the mean square before the square root; `None` uses the machine epsilon of
    /// the input's float type (`torch.finfo(x.dtype).eps`: `f32::EPSILON` for f32 inputs).
    /// Default: `None`.
    pub eps: Option<f64>,
    /// Learn an elementwise scale `gamma` of shape `normalized_shape`. Default: `true`.
    #[config(default = true)]
    pub elementwise_affine: bool,
}

/// Root-mean-square normalization over the trailing `normalized_shape` dimensions.
///
/// Based on the paper [Root Mean Square Layer Normalization](https://arxiv.org/abs/1910.07467)
/// (Zhang & Sennrich, 2019).
///
/// `y = x / sqrt(mean(x²) + eps) * gamma`
///
/// with the mean of squares taken over the last `normalized_shape.len()` dimensions,
/// separately for every leading index. Unlike [`LayerNorm`](crate::LayerNorm) nothing is
/// subtracted and there is no shift. The statistics never depend on the batch, so training
/// and evaluation give the same output.
///
/// `gamma` holds `prod(normalized_shape)` values in row-major order: PyTorch's `weight` of
/// shape `normalized_shape`, flattened.
///
/// # Shapes
/// - input: `[*, normalized_shape...]` (leading dimensions optional)
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::RmsNormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let rms = RmsNormConfig::new(vec![2]).init(&device); // nn.RMSNorm(2)
/// let y = rms.forward(Tensor::<2>::from_data([[3.0, 4.0]], &device));
/// // mean(x²) = 12.5: y = x / sqrt(12.5 + f32::EPSILON)
/// let y = y.into_data().try_to_vec::<f32>().unwrap();
/// assert!((y[0] - 0.848_528).abs() < 1e-5 && (y[1] - 1.131_371).abs() < 1e-5);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct RmsNorm {
    /// Learnable elementwise scale, flattened `normalized_shape`; `None` without
    /// `elementwise_affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// The trailing dimensions normalized over.
    pub normalized_shape: Vec<usize>,
    /// Added to the mean square; `None` for the input type's machine epsilon.
    pub eps: Option<f64>,
}

/// One line in PyTorch's terms: `RmsNorm {normalized_shape: [4], eps: None,
/// elementwise_affine: true, params: 4}`.
impl ModuleDisplay for RmsNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let content = content.add(
            "normalized_shape",
            format!("{:?}", self.normalized_shape).as_str(),
        );
        let content = match &self.eps {
            Some(eps) => content.add("eps", eps),
            None => content.add("eps", "None"),
        };
        content
            .add("elementwise_affine", &self.gamma.is_some())
            .optional()
    }
}

impl RmsNormConfig {
    /// Builds the layer with `gamma = 1`.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `normalized_shape` is empty or has a zero, or `eps`
    /// is negative or not finite.
    pub fn try_init(&self, device: &Device) -> Result<RmsNorm, NormError> {
        let size = normalized_shape::checked_size("RMSNorm", &self.normalized_shape)?;
        if let Some(eps) = self.eps {
            check_eps("RMSNorm", eps)?;
        }
        Ok(RmsNorm {
            gamma: self
                .elementwise_affine
                .then(|| params::filled(size, 1.0, device)),
            normalized_shape: self.normalized_shape.clone(),
            eps: self.eps,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> RmsNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl RmsNorm {
    /// Normalizes `input`, see [`RmsNorm`].
    ///
    /// # Shapes
    /// - input: `[*, normalized_shape...]`
    /// - output: the input's shape.
    ///
    /// # Errors
    /// [`NormError::NormalizedShapeMismatch`] when the input's trailing dimensions are not
    /// `normalized_shape`.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        // `eps: None` is the machine epsilon of the input's own type, half or not.
        let eps = self.eps.unwrap_or_else(|| machine_epsilon(input.dtype()));
        in_f32_if_half(input, |x| self.normalize(x, eps))
    }

    /// `try_forward` with `eps` resolved, on an input of f32 or f64.
    fn normalize<const D: usize>(
        &self,
        input: Tensor<D>,
        eps: f64,
    ) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        let (rows, size) = normalized_shape::rows_and_size(&dims, &self.normalized_shape)?;
        if rows == 0 {
            return Ok(input);
        }
        let x = input.reshape([rows, size]);
        let mean_square = x.clone().square().mean_dim(1);
        let normalized = x * mean_square.add_scalar(eps).sqrt().recip();
        let scaled = match &self.gamma {
            Some(gamma) => {
                let gamma = in_dtype(gamma.val(), normalized.dtype());
                normalized * gamma.unsqueeze_dim::<2>(0)
            }
            None => normalized,
        };
        Ok(scaled.reshape(dims))
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

/// `torch.finfo(dtype).eps`: the gap between 1 and the next value of the float type.
fn machine_epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON,
        DType::F16 => 0.000_976_562_5,
        DType::BF16 => 0.007_812_5,
        _ => f32::EPSILON as f64,
    }
}

#[cfg(test)]
mod tests {
    //! Expected values computed by hand (noted at each test); the PyTorch golden cases
    //! (`rms_*` in `tests/data/pytorch_golden.json`) check the rest.

    use super::*;
    use crate::test_util::assert_close;

    #[test]
    fn divides_each_row_by_its_root_mean_square() {
        let device = Device::flex();
        // Rows [3, 4] and [1, -1]: mean squares 12.5 and 1; eps = 0 for exact values.
        let rms = RmsNormConfig::new(vec![2])
            .with_eps(Some(0.0))
            .init(&device);
        let y = rms.forward(Tensor::<2>::from_data([[3.0, 4.0], [1.0, -1.0]], &device));
        let r = 12.5f64.sqrt();
        assert_close(y, &[3.0 / r, 4.0 / r, 1.0, -1.0], 1e-6);
    }

    #[test]
    fn eps_none_is_the_input_types_machine_epsilon() {
        let device = Device::flex();
        // A zero row: y = 0 / sqrt(0 + eps) = 0 whatever eps is; a row of ε^½ has mean
        // square ε, so y = ε^½ / sqrt(2ε) = 1/√2 only with eps = f32::EPSILON.
        let rms = RmsNormConfig::new(vec![1]).init(&device);
        let x = (f32::EPSILON as f64).sqrt();
        let y = rms.forward(Tensor::<2>::from_data([[x], [0.0]], &device));
        assert_close(y, &[std::f64::consts::FRAC_1_SQRT_2, 0.0], 1e-5);
        assert_eq!(machine_epsilon(DType::F64), f64::EPSILON);
    }

    #[test]
    fn trailing_shape_must_match_and_config_is_checked() {
        let device = Device::flex();
        let rms = RmsNormConfig::new(vec![3, 5]).init(&device);
        let err = rms
            .try_forward(Tensor::<3>::ones([2, 5, 3], &device))
            .unwrap_err();
        assert_eq!(err.kind(), "NormalizedShapeMismatch");
        let bad = RmsNormConfig::new(vec![]).try_init(&device).unwrap_err();
        assert_eq!(bad.kind(), "InvalidConfig");
        let bad = RmsNormConfig::new(vec![4])
            .with_eps(Some(-1.0))
            .try_init(&device)
            .unwrap_err();
        assert!(
            bad.to_string().contains("eps must be finite and >= 0"),
            "{bad}"
        );
        let plain = RmsNormConfig::new(vec![4]).with_elementwise_affine(false);
        assert!(plain.init(&device).gamma.is_none());
        assert_eq!(
            format!("{}", RmsNormConfig::new(vec![4]).init(&device)),
            "RmsNorm {normalized_shape: [4], eps: None, elementwise_affine: true, params: 4}"
        );
    }
}
