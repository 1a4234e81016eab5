//! The normalization arithmetic shared by the layers, in its two forms: composed from plain
//! tensor ops (the textbook algorithm) and fused into this crate's one-node ops
//! ([`kernels`]).
//!
//! Everything here works on a channel-major view of the input, `[N, C, S]` with `S` the
//! product of the spatial dimensions, so one function serves every input rank, and in the
//! input's dtype: parameters and statistics of another dtype (a half model's f16 `gamma`,
//! its f32 running statistics) are cast to it.

use burn::tensor::Tensor;

use crate::activation::maybe_apply;
use crate::kernels;
use crate::precision::in_dtype;
use crate::{Activation, ComputePath};

/// The output of a normalization with statistics of its input, and the statistics themselves
/// (per channel or group, detached, the variance **biased**: divided by the count).
pub(crate) struct BatchStats<const D: usize> {
    pub output: Tensor<D>,
    pub mean: Tensor<1>,
    pub var_biased: Tensor<1>,
}

/// `(output, mean, biased variance)`, as the fused ops return them.
impl<const D: usize> From<(Tensor<D>, Tensor<1>, Tensor<1>)> for BatchStats<D> {
    fn from((output, mean, var_biased): (Tensor<D>, Tensor<1>, Tensor<1>)) -> Self {
        Self {
            output,
            mean,
            var_biased,
        }
    }
}

/// `y = f((x - E[x]) / sqrt(Var[x] + eps) * gamma + beta)`, one statistic per channel of
/// `x: [N, C, ...]`, reduced over the batch and every spatial position; `f` is `activation`
/// or the identity.
pub(crate) fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
    activation: Option<Activation>,
    path: ComputePath,
) -> BatchStats<D> {
    let (gamma, beta) = like_input(gamma, beta, &x);
    match path {
        ComputePath::Fused if kernels::covers(&x.device()) => {
            let (gamma, beta) = identity_if_absent(gamma, beta, &x);
            kernels::batch_norm_train_fused(x, gamma, beta, eps, activation).into()
        }
        // The composed path, and the fused one on a backend without kernels.
        ComputePath::Fused | ComputePath::Composed => {
            let dims = x.dims();
            let [n, c, s] = channel_major(&dims);
            let x = x.reshape([n, c, s]);
            // mean = X.mean(dim=(0, 2)); var = ((X - mean) ** 2).mean(dim=(0, 2)), with X
            // first shifted by one of its values per channel (a constant: the shifted-data
            // algorithm), so that f32 sums of a large mean keep their digits.
            let pivot = x.clone().slice([0..1, 0..c, 0..1]).detach();
            let shifted = x - pivot.clone();
            let shifted_mean = shifted.clone().mean_dims(&[0, 2]);
            let centered = shifted - shifted_mean.clone();
            let mean = pivot + shifted_mean;
            let var = centered.clone().square().mean_dims(&[0, 2]);
            let x_hat = centered / var.clone().add_scalar(eps).sqrt();
            let output = maybe_apply(activation, scale_shift(x_hat, gamma, beta).reshape(dims));
            BatchStats {
                output,
                mean: mean.reshape([c]).detach(),
                var_biased: var.reshape([c]).detach(),
            }
        }
    }
}

/// `y = f((x - mean) / sqrt(var + eps) * gamma + beta)` with given per-channel statistics
/// (evaluation with running statistics), `f` as in [`batch_norm_train`]. The statistics are
/// constants for autodiff, moved to `x`'s device and dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_eval<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    mean: Tensor<1>,
    var: Tensor<1>,
    eps: f64,
    activation: Option<Activation>,
    path: ComputePath,
) -> Tensor<D> {
    let (gamma, beta) = like_input(gamma, beta, &x);
    let (device, dtype) = (x.device(), x.dtype());
    let [mean, var] = [mean, var].map(|stat| in_dtype(stat.to_device(&device), dtype));
    match path {
        ComputePath::Fused if kernels::covers(&x.device()) => {
            let (gamma, beta) = identity_if_absent(gamma, beta, &x);
            kernels::batch_norm_eval_fused(x, gamma, beta, mean, var, eps, activation)
        }
        // The composed path, and the fused one on a backend without kernels.
        ComputePath::Fused | ComputePath::Composed => {
            let dims = x.dims();
            let [n, c, s] = channel_major(&dims);
            let x = x.reshape([n, c, s]);
            let mean = mean.reshape([1, c, 1]);
            let std = var.add_scalar(eps).sqrt().reshape([1, c, 1]);
            let x_hat = (x - mean) / std;
            maybe_apply(activation, scale_shift(x_hat, gamma, beta).reshape(dims))
        }
    }
}

/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta` with one statistic per sample and
/// group of `C / groups` channels of `x: [N, C, ...]` (over the group's channels and every
/// spatial position), and a per-channel `gamma`/`beta`. The statistics are `[N · groups]`.
///
/// GroupNorm as it stands; InstanceNorm is `groups = C`; LayerNorm over the last `K` values
/// is `x: [M, K]` with `groups = 1` (K channels of one position each, so the per-channel
/// affine is LayerNorm's elementwise one).
pub(crate) fn group_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    groups: usize,
    eps: f64,
    path: ComputePath,
) -> BatchStats<D> {
    let (gamma, beta) = like_input(gamma, beta, &x);
    match path {
        ComputePath::Fused if kernels::covers(&x.device()) => {
            let (gamma, beta) = identity_if_absent(gamma, beta, &x);
            kernels::group_norm_fused(x, gamma, beta, groups, eps).into()
        }
        // The composed path, and the fused one on a backend without kernels.
        ComputePath::Fused | ComputePath::Composed => {
            let dims = x.dims();
            let [n, c, s] = channel_major(&dims);
            // X = x.reshape(N * G, -1); mean = X.mean(1); var = ((X - mean) ** 2).mean(1),
            // shifted by one value per row first, as in `batch_norm_train`.
            let rows = x.reshape([n * groups, c / groups * s]);
            let pivot = rows.clone().slice([0..n * groups, 0..1]).detach();
            let shifted = rows - pivot.clone();
            let shifted_mean = shifted.clone().mean_dim(1);
            let centered = shifted - shifted_mean.clone();
            let mean = pivot + shifted_mean;
            let var = centered.clone().square().mean_dim(1);
            let x_hat = centered / var.clone().add_scalar(eps).sqrt();
            let output = scale_shift(x_hat.reshape([n, c, s]), gamma, beta).reshape(dims);
            BatchStats {
                output,
                mean: mean.reshape([n * groups]).detach(),
                var_biased: var.reshape([n * groups]).detach(),
            }
        }
    }
}

/// `gamma` and `beta` in the dtype of `x`.
fn like_input<const D: usize>(
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    x: &Tensor<D>,
) -> (Option<Tensor<1>>, Option<Tensor<1>>) {
    let dtype = x.dtype();
    (
        gamma.map(|g| in_dtype(g, dtype)),
        beta.map(|b| in_dtype(b, dtype)),
    )
}

/// The fused ops always scale and shift: a layer without `affine` gets `gamma = 1`,
/// `beta = 0` (constants, outside the autodiff graph) for the channels of `x: [N, C, ...]`,
/// in its dtype.
pub(crate) fn identity_if_absent<const D: usize>(
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    x: &Tensor<D>,
) -> (Tensor<1>, Tensor<1>) {
    let options = (&x.device(), x.dtype());
    let channels = x.dims()[1];
    (
        gamma.unwrap_or_else(|| Tensor::ones([channels], options)),
        beta.unwrap_or_else(|| Tensor::zeros([channels], options)),
    )
}

/// Per-channel `gamma * x + beta` on a channel-major `[N, C, S]` tensor, in the dtype of `x`.
pub(crate) fn scale_shift(
    x: Tensor<3>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
) -> Tensor<3> {
    let (gamma, beta) = like_input(gamma, beta, &x);
    let c = x.dims()[1];
    let x = match gamma {
        Some(gamma) => x * gamma.reshape([1, c, 1]),
        None => x,
    };
    match beta {
        Some(beta) => x + beta.reshape([1, c, 1]),
        None => x,
    }
}

/// `[N, C, S]` for an input of shape `[N, C, ...]`: `S` is the product of the spatial sizes.
pub(crate) fn channel_major(dims: &[usize]) -> [usize; 3] {
    let spatial = dims[2..].iter().product();
    [dims[0], dims[1], spatial]
}
