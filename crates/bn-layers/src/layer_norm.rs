//! Layer normalization with PyTorch's `nn.LayerNorm` semantics.

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::tensor::{Device, Tensor};

use crate::display;
use crate::error::check_eps;
use crate::functional;
use crate::normalized_shape;
use crate::precision::in_f32_if_half;
use crate::{ComputePath, NormError, params};

/// Configuration of a [`LayerNorm`] layer. Field names and defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// The trailing dimensions to normalize over, e.g. `[C, H, W]`, or `[d_model]`.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance before the square root. Default: `1e-5`.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Learn an elementwise scale `gamma` (and shift `beta`, see `bias`) of shape
    /// `normalized_shape`. Default: `true`.
    #[config(default = true)]
    pub elementwise_affine: bool,
    /// Learn the shift `beta` too (only with `elementwise_affine`). Default: `true`.
    #[config(default = true)]
    pub bias: bool,
    /// One fused op or the composed textbook algorithm. Default: [`ComputePath::Fused`].
    #[config(default = "ComputePath::Fused")]
    pub path: ComputePath,
}

/// Layer normalization over the trailing `normalized_shape` dimensions of the input.
///
/// Based on the paper [Layer Normalization](https://arxiv.org/abs/1607.06450)
/// (Ba, Kiros & Hinton, 2016).
///
/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`
///
/// with the mean and **biased** variance taken over the last `normalized_shape.len()`
/// dimensions, separately for every leading index. The statistics never depend on the batch,
/// so training and evaluation give the same output and there are no running statistics.
///
/// `gamma` and `beta` hold `prod(normalized_shape)` values in row-major order: PyTorch's
/// `weight`/`bias` of shape `normalized_shape`, flattened.
///
/// # Shapes
/// - input: `[*, normalized_shape...]` (leading dimensions optional)
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::LayerNormConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let ln = LayerNormConfig::new(vec![3, 4]).init(&device); // nn.LayerNorm((3, 4))
/// let y = ln.forward(Tensor::<3>::ones([2, 3, 4], &device));
/// assert_eq!(y.dims(), [2, 3, 4]);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct LayerNorm {
    /// Learnable elementwise scale, flattened `normalized_shape`; `None` without
    /// `elementwise_affine`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Learnable elementwise shift, flattened `normalized_shape`; `None` without
    /// `elementwise_affine` or without `bias`.
    pub beta: Option<Param<Tensor<1>>>,
    /// The trailing dimensions normalized over.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Compute path.
    #[module(skip)]
    pub path: ComputePath,
}

/// One line in PyTorch's terms, as burn-nn's norm layers print:
/// `LayerNorm {normalized_shape: [4], eps: 0.00001, elementwise_affine: true, bias: true,
/// params: 8}`.
impl ModuleDisplay for LayerNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        display::one_line()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add(
                "normalized_shape",
                format!("{:?}", self.normalized_shape).as_str(),
            )
            .add("eps", &self.eps)
            .add("elementwise_affine", &self.gamma.is_some())
            .add("bias", &self.beta.is_some())
            .optional()
    }
}

impl LayerNormConfig {
    /// Builds the layer with `gamma = 1` and `beta = 0`.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `normalized_shape` is empty or has a zero, or `eps`
    /// is negative or not finite.
    pub fn try_init(&self, device: &Device) -> Result<LayerNorm, NormError> {
        let size = normalized_shape::checked_size("LayerNorm", &self.normalized_shape)?;
        check_eps("LayerNorm", self.eps)?;
        let affine = self.elementwise_affine;
        Ok(LayerNorm {
            gamma: affine.then(|| params::filled(size, 1.0, device)),
            beta: (affine && self.bias).then(|| params::filled(size, 0.0, device)),
            normalized_shape: self.normalized_shape.clone(),
            eps: self.eps,
            path: self.path,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> LayerNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl LayerNorm {
    /// Normalizes `input`, see [`LayerNorm`].
    ///
    /// # Shapes
    /// - input: `[*, normalized_shape...]`
    /// - output: the input's shape.
    ///
    /// # Errors
    /// [`NormError::NormalizedShapeMismatch`] when the input's trailing dimensions are not
    /// `normalized_shape`.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let dims = input.dims();
        let (rows, size) = normalized_shape::rows_and_size(&dims, &self.normalized_shape)?;
        if rows == 0 {
            return Ok(input);
        }
        let gamma = self.gamma.as_ref().map(Param::val);
        let beta = self.beta.as_ref().map(Param::val);
        let rows = functional::group_norm(
            input.reshape([rows, size]),
            gamma,
            beta,
            1,
            self.eps,
            self.path,
        );
        Ok(rows.output.reshape(dims))
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
    //! `scripts/semantics_probe.py` (section 8), or computed by hand where noted.

    use super::*;
    use crate::test_util::{assert_close, tensor, train_device};

    #[test]
    fn nan_poisons_only_its_own_row() {
        let device = train_device();
        let ln = LayerNormConfig::new(vec![2]).init(&device);
        let x = tensor(
            [1.0, 2.0, f64::NAN, 3.0, 2.0, 5.0, 4.0, 1.0],
            [4, 2],
            &device,
        );
        let y: Vec<f64> = ln.forward(x).into_data().iter::<f64>().collect();
        assert!(y[2].is_nan() && y[3].is_nan());
        let finite = [y[0], y[1], y[4], y[5], y[6], y[7]];
        #[rustfmt::skip]
        let want = [
            -0.9999800005999799, 0.9999800005999799,
            -0.9999977777851852, 0.9999977777851852,
            0.9999977777851852, -0.9999977777851852,
        ];
        for (g, w) in finite.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{finite:?}");
        }
    }

    #[test]
    fn normalizes_over_several_trailing_dimensions() {
        // By hand: each [2, 2] block of (0, 1, 2, 3) has mean 1.5 and biased variance 1.25.
        let device = train_device();
        let ln = LayerNormConfig::new(vec![2, 2])
            .with_path(ComputePath::Composed)
            .init(&device);
        let x = tensor(
            [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0],
            [2, 2, 2],
            &device,
        );
        let s = (1.25f64 + 1e-5).sqrt();
        let row = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s];
        let want: Vec<f64> = row.iter().chain(&row).copied().collect();
        assert_close(ln.forward(x), &want, 1e-5);
    }

    #[test]
    fn a_single_element_gives_the_bias() {
        let device = train_device();
        let mut ln = LayerNormConfig::new(vec![1]).init(&device);
        ln.beta = Some(Param::from_tensor(tensor([0.25], [1], &device)));
        assert_close(
            ln.forward(tensor([3.0, -7.0], [2, 1], &device)),
            &[0.25, 0.25],
            1e-6,
        );
    }

    #[test]
    fn trailing_shape_must_match() {
        let device = train_device();
        let ln = LayerNormConfig::new(vec![3, 5]).init(&device);
        let err = ln
            .try_forward(Tensor::<3>::ones([4, 5, 3], &device))
            .unwrap_err();
        assert_eq!(err.kind(), "NormalizedShapeMismatch");
        let message = err.to_string();
        assert!(
            message.contains("[*, 3, 5]") && message.contains("[4, 5, 3]"),
            "{message}"
        );
        // No leading dimensions are needed.
        assert!(ln.try_forward(Tensor::<2>::ones([3, 5], &device)).is_ok());
    }

    #[test]
    fn parameters_follow_elementwise_affine_and_bias() {
        let device = train_device();
        let ln = LayerNormConfig::new(vec![3, 5])
            .with_bias(false)
            .init(&device);
        assert_eq!(ln.gamma.as_ref().unwrap().dims(), [15]);
        assert!(ln.beta.is_none());
        let bare = LayerNormConfig::new(vec![4])
            .with_elementwise_affine(false)
            .init(&device);
        assert!(bare.gamma.is_none() && bare.beta.is_none());
        let err = LayerNormConfig::new(vec![]).try_init(&device).unwrap_err();
        assert_eq!(err.kind(), "InvalidConfig");
    }

    #[test]
    fn displays_in_pytorch_terms() {
        // 8 parameters: γ and β over the 4 normalized values.
        let ln = LayerNormConfig::new(vec![4]).init(&train_device());
        assert_eq!(
            format!("{ln}"),
            "LayerNorm {normalized_shape: [4], eps: 0.00001, elementwise_affine: true, \
             bias: true, params: 8}"
        );
    }
}
