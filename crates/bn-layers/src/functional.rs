//! The normalization arithmetic shared by the layers, in its two forms: composed from plain
//! tensor ops (the textbook algorithm) and fused into Burn's normalization ops.
//!
//! Everything here works on a channel-major view of the input, `[N, C, S]` with `S` the
//! product of the spatial dimensions, so one function serves every input rank.

use burn::tensor::{Tensor, module};

use crate::ComputePath;
use crate::kernels;

/// The output of a normalization with batch statistics, and the statistics themselves
/// (per channel, detached, the variance **biased**: divided by the count).
pub(crate) struct BatchStats<const D: usize> {
    pub output: Tensor<D>,
    pub mean: Tensor<1>,
    pub var_biased: Tensor<1>,
}

/// `y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`, one statistic per channel of
/// `x: [N, C, ...]`, reduced over the batch and every spatial position.
pub(crate) fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
    path: ComputePath,
) -> BatchStats<D> {
    match path {
        ComputePath::Fused => {
            let (gamma, beta) = identity_if_absent(gamma, beta, &x);
            let (output, mean, var_biased) = kernels::batch_norm_train_fused(x, gamma, beta, eps);
            BatchStats {
                output,
                mean,
                var_biased,
            }
        }
        ComputePath::Composed => {
            let dims = x.dims();
            let [n, c, s] = channel_major(&dims);
            let x = x.reshape([n, c, s]);
            // mean = X.mean(dim=(0, 2)); var = ((X - mean) ** 2).mean(dim=(0, 2))
            let mean = x.clone().mean_dims(&[0, 2]);
            let centered = x - mean.clone();
            let var = centered.clone().square().mean_dims(&[0, 2]);
            let x_hat = centered / var.clone().add_scalar(eps).sqrt();
            let output = scale_shift(x_hat, gamma, beta).reshape(dims);
            BatchStats {
                output,
                mean: mean.reshape([c]).detach(),
                var_biased: var.reshape([c]).detach(),
            }
        }
    }
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` with given per-channel statistics
/// (evaluation with running statistics). The statistics are constants for autodiff.
pub(crate) fn batch_norm_eval<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    mean: Tensor<1>,
    var: Tensor<1>,
    eps: f64,
    path: ComputePath,
) -> Tensor<D> {
    match path {
        ComputePath::Fused => {
            let (gamma, beta) = identity_if_absent(gamma, beta, &x);
            module::batch_norm(x, gamma, beta, mean, var, eps)
        }
        ComputePath::Composed => {
            let dims = x.dims();
            let [n, c, s] = channel_major(&dims);
            let x = x.reshape([n, c, s]);
            let mean = mean.reshape([1, c, 1]);
            let std = var.add_scalar(eps).sqrt().reshape([1, c, 1]);
            let x_hat = (x - mean) / std;
            scale_shift(x_hat, gamma, beta).reshape(dims)
        }
    }
}

/// Normalizes each row of `x: [M, K]` over its `K` values (biased variance), then applies
/// the optional elementwise `gamma`/`beta` of length `K`.
pub(crate) fn normalize_rows(
    x: Tensor<2>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
    path: ComputePath,
) -> Tensor<2> {
    match path {
        ComputePath::Fused => {
            let k = x.dims()[1];
            let gamma = gamma.unwrap_or_else(|| Tensor::ones([k], &x.device()));
            module::layer_norm(x, gamma, beta, eps)
        }
        ComputePath::Composed => {
            let k = x.dims()[1];
            let mean = x.clone().mean_dim(1);
            let centered = x - mean;
            let var = centered.clone().square().mean_dim(1);
            let x_hat = centered / var.add_scalar(eps).sqrt();
            let y = match gamma {
                Some(gamma) => x_hat * gamma.reshape([1, k]),
                None => x_hat,
            };
            match beta {
                Some(beta) => y + beta.reshape([1, k]),
                None => y,
            }
        }
    }
}

/// The fused ops always scale and shift: a layer without `affine` gets `gamma = 1`,
/// `beta = 0` (constants, outside the autodiff graph) for the channels of `x: [N, C, ...]`.
fn identity_if_absent<const D: usize>(
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    x: &Tensor<D>,
) -> (Tensor<1>, Tensor<1>) {
    let channels = x.dims()[1];
    let device = x.device();
    (
        gamma.unwrap_or_else(|| Tensor::ones([channels], &device)),
        beta.unwrap_or_else(|| Tensor::zeros([channels], &device)),
    )
}

/// Per-channel `gamma * x + beta` on a channel-major `[N, C, S]` tensor.
pub(crate) fn scale_shift(
    x: Tensor<3>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
) -> Tensor<3> {
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
