//! Layer normalization with PyTorch's `nn.LayerNorm` semantics.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::error::{check_eps, check_nonzero};
use crate::functional;
use crate::{ComputePath, NormError};

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
    /// Fused Burn op or the composed textbook algorithm. Default: [`ComputePath::Fused`].
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
#[derive(Module, Debug)]
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

impl LayerNormConfig {
    /// Builds the layer with `gamma = 1` and `beta = 0`.
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `normalized_shape` is empty or has a zero, or `eps`
    /// is negative or not finite.
    pub fn try_init(&self, device: &Device) -> Result<LayerNorm, NormError> {
        if self.normalized_shape.is_empty() {
            return Err(NormError::invalid_config(
                "LayerNorm",
                "normalized_shape must name at least one dimension",
            ));
        }
        for &dim in &self.normalized_shape {
            check_nonzero("LayerNorm", "every normalized_shape dimension", dim)?;
        }
        check_eps("LayerNorm", self.eps)?;
        let size: usize = self.normalized_shape.iter().product();
        let param = |value: f64| Param::from_tensor(Tensor::full([size], value, device));
        Ok(LayerNorm {
            gamma: self.elementwise_affine.then(|| param(1.0)),
            beta: (self.elementwise_affine && self.bias).then(|| param(0.0)),
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
        let dims = input.dims();
        let k = self.normalized_shape.len();
        if D < k || dims[D - k..] != self.normalized_shape[..] {
            return Err(NormError::NormalizedShapeMismatch {
                normalized_shape: self.normalized_shape.clone(),
                shape: dims.to_vec(),
            });
        }
        let size: usize = self.normalized_shape.iter().product();
        let rows = dims[..D - k].iter().product::<usize>();
        if rows == 0 {
            return Ok(input);
        }
        let gamma = self.gamma.as_ref().map(Param::val);
        let beta = self.beta.as_ref().map(Param::val);
        let rows = functional::normalize_rows(
            input.reshape([rows, size]),
            gamma,
            beta,
            self.eps,
            self.path,
        );
        Ok(rows.reshape(dims))
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
