//! The kernels written with Burn's backend ops, for every backend without a hand-written
//! kernel (ndarray, wgpu, and any other): correct everywhere, as fast as the backend's
//! elementwise ops and reductions allow.
//!
//! The statistics are centred twice: first on one value of the set (the shifted-data
//! algorithm, so an f32 sum of a large mean keeps its digits), then on the mean (`Σ(x - μ)²`,
//! never `Σx² - (Σx)²/m`); the backward's reductions are centred too (`Σ dy·(x - μ)`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Scalar, Shape, Slice, TensorMetadata};

use crate::Activation;

/// `activation(z)` in the backend's own ops, when there is one.
pub(crate) fn activate<B: Backend>(
    z: FloatTensor<B>,
    activation: Option<Activation>,
) -> FloatTensor<B> {
    match activation {
        None => z,
        Some(Activation::Relu) => B::relu(z),
        Some(Activation::Sigmoid) => B::sigmoid(z),
    }
}

/// The gradient before the activation, `dz = dy · f'(z)`, from the activation's output `y`.
pub(crate) fn activation_backward<B: Backend>(
    dy: FloatTensor<B>,
    activated: Option<(Activation, FloatTensor<B>)>,
) -> FloatTensor<B> {
    match activated {
        None => dy,
        Some((Activation::Relu, y)) => B::relu_backward(y, dy),
        Some((Activation::Sigmoid, y)) => B::sigmoid_backward(y, dy),
    }
}

/// `[N, C, S]` and `[1, C, 1]` for an input of shape `[N, C, ...]`, and `N·S`.
fn channel_views(shape: &Shape) -> (Shape, Shape, usize) {
    let (n, c) = (shape[0], shape[1]);
    let s = shape.num_elements() / (n * c).max(1);
    (Shape::new([n, c, s]), Shape::new([1, c, 1]), n * s)
}

/// Per-channel sum over axes 0 and 2 of a `[N, C, S]` tensor, as `[1, C, 1]`.
fn channel_sum<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x = match x.shape()[2] {
        1 => x,
        _ => B::float_sum_dim(x, 2),
    };
    B::float_sum_dim(x, 0)
}

fn rstd<B: Backend>(var: FloatTensor<B>, epsilon: f64) -> FloatTensor<B> {
    B::float_recip(B::float_sqrt(B::float_add_scalar(
        var,
        Scalar::Float(epsilon),
    )))
}

fn vector<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let len = t.shape().num_elements();
    B::float_reshape(t, Shape::new([len]))
}

/// The first value of every channel of `x: [N, C, S]`, as `[1, C, 1]`: the shift of the
/// shifted-data algorithm.
fn channel_pivot<B: Backend>(x: &FloatTensor<B>) -> FloatTensor<B> {
    let c = x.shape()[1];
    let ranges = [Slice::from(0..1), Slice::from(0..c), Slice::from(0..1)];
    B::float_slice(x.clone(), &ranges)
}

/// `centred·γr + β` per channel of a `[N, C, S]` tensor, the statistics `[1, C, 1]`.
fn scale_shift<B: Backend>(
    centred: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    rstd: FloatTensor<B>,
) -> FloatTensor<B> {
    let per_channel = rstd.shape();
    let scale = B::float_mul(B::float_reshape(gamma, per_channel.clone()), rstd);
    B::float_add(
        B::float_mul(centred, scale),
        B::float_reshape(beta, per_channel),
    )
}

/// See [`NormKernels::batch_norm_train_fused`](super::NormKernels::batch_norm_train_fused); the
/// activation in the backend's own op.
pub(crate) fn batch_norm_train_fused<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    activation: Option<Activation>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (view, _, m) = channel_views(&shape);
    let per_m = Scalar::Float(1.0 / m as f64);
    let x = B::float_reshape(x, view);
    let pivot = channel_pivot::<B>(&x);
    let shifted = B::float_sub(x, pivot.clone());
    let shifted_mean = B::float_mul_scalar(channel_sum::<B>(shifted.clone()), per_m);
    let centred = B::float_sub(shifted, shifted_mean.clone());
    let var = B::float_mul_scalar(
        channel_sum::<B>(B::float_mul(centred.clone(), centred.clone())),
        per_m,
    );
    let y = scale_shift::<B>(centred, gamma, beta, rstd::<B>(var.clone(), epsilon));
    let mean = B::float_add(pivot, shifted_mean);
    (
        activate::<B>(B::float_reshape(y, shape), activation),
        vector::<B>(mean),
        vector::<B>(var),
    )
}

/// See [`NormKernels::batch_norm_eval_fused`](super::NormKernels::batch_norm_eval_fused); the
/// activation in the backend's own op.
pub(crate) fn batch_norm_eval_fused<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    epsilon: f64,
    activation: Option<Activation>,
) -> FloatTensor<B> {
    let shape = x.shape();
    let (view, per_channel, _) = channel_views(&shape);
    let centred = B::float_sub(
        B::float_reshape(x, view),
        B::float_reshape(mean, per_channel.clone()),
    );
    let rstd = rstd::<B>(B::float_reshape(var, per_channel), epsilon);
    let y = B::float_reshape(scale_shift::<B>(centred, gamma, beta, rstd), shape);
    activate::<B>(y, activation)
}

/// See [`NormGradKernels::batch_norm_fused_backward`](super::NormGradKernels::batch_norm_fused_backward);
/// the activation's backward in the backend's own op.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_fused_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    epsilon: f64,
    dy: FloatTensor<B>,
    batch_stats: bool,
    activated: Option<(Activation, FloatTensor<B>)>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let dy = activation_backward::<B>(dy, activated);
    let shape = x.shape();
    let (view, per_channel, m) = channel_views(&shape);
    let per_m = Scalar::Float(1.0 / m as f64);
    let r = rstd::<B>(B::float_reshape(var, per_channel.clone()), epsilon);
    let centred = B::float_sub(
        B::float_reshape(x, view.clone()),
        B::float_reshape(mean, per_channel.clone()),
    );
    let dy = B::float_reshape(dy, view);
    let s1 = channel_sum::<B>(dy.clone());
    let s2 = channel_sum::<B>(B::float_mul(dy.clone(), centred.clone()));
    let gamma_r = B::float_mul(B::float_reshape(gamma, per_channel), r.clone());
    let mut dx = B::float_mul(dy, gamma_r.clone());
    if batch_stats {
        // dx = γr (dy - Σdy/m - (x - μ) r² Σdy(x - μ)/m)
        let k_x = B::float_mul_scalar(
            B::float_mul(
                B::float_mul(gamma_r.clone(), B::float_mul(r.clone(), r.clone())),
                s2.clone(),
            ),
            per_m,
        );
        let k_0 = B::float_mul_scalar(B::float_mul(gamma_r, s1.clone()), per_m);
        dx = B::float_sub(B::float_sub(dx, B::float_mul(centred, k_x)), k_0);
    }
    let dgamma = B::float_mul(s2, r);
    (
        B::float_reshape(dx, shape),
        vector::<B>(dgamma),
        vector::<B>(s1),
    )
}

/// `[N·G, K]` rows and the `[N, C, S]` view of a `[N, C, ...]` input in `groups` groups.
fn row_views(shape: &Shape, groups: usize) -> (Shape, Shape) {
    let (n, c) = (shape[0], shape[1]);
    let s = shape.num_elements() / (n * c).max(1);
    (
        Shape::new([n * groups, c / groups * s]),
        Shape::new([n, c, s]),
    )
}

/// See [`NormKernels::group_norm_fused`](super::NormKernels::group_norm_fused).
pub(crate) fn group_norm_fused<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (rows, channels) = row_views(&shape, groups);
    let c = channels[1];
    let x = B::float_reshape(x, rows.clone());
    let pivot = B::float_slice(x.clone(), &[Slice::from(0..rows[0]), Slice::from(0..1)]);
    let shifted = B::float_sub(x, pivot.clone());
    let shifted_mean = B::float_mean_dim(shifted.clone(), 1);
    let centred = B::float_sub(shifted, shifted_mean.clone());
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 1);
    let mean = B::float_add(pivot, shifted_mean);
    let x_hat = B::float_reshape(
        B::float_mul(centred, rstd::<B>(var.clone(), epsilon)),
        channels,
    );
    let per_channel = Shape::new([1, c, 1]);
    let y = B::float_add(
        B::float_mul(x_hat, B::float_reshape(gamma, per_channel.clone())),
        B::float_reshape(beta, per_channel),
    );
    (
        B::float_reshape(y, shape),
        vector::<B>(mean),
        vector::<B>(var),
    )
}

/// See [`NormGradKernels::group_norm_fused_backward`](super::NormGradKernels::group_norm_fused_backward).
pub(crate) fn group_norm_fused_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (rows, channels) = row_views(&shape, groups);
    let per_row = Shape::new([rows[0], 1]);
    let c = channels[1];
    let r = rstd::<B>(B::float_reshape(var, per_row.clone()), epsilon);
    let x_hat = B::float_mul(
        B::float_sub(
            B::float_reshape(x, rows.clone()),
            B::float_reshape(mean, per_row),
        ),
        r.clone(),
    );
    let dy = B::float_reshape(dy, channels.clone());
    let x_hat_channels = B::float_reshape(x_hat.clone(), channels.clone());
    let dgamma = channel_sum::<B>(B::float_mul(dy.clone(), x_hat_channels));
    let dbeta = channel_sum::<B>(dy.clone());
    // g = dy·γ; dx = r (g - mean(g) - x̂ mean(g x̂)) per row.
    let g = B::float_reshape(
        B::float_mul(dy, B::float_reshape(gamma, Shape::new([1, c, 1]))),
        rows,
    );
    let mean_g = B::float_mean_dim(g.clone(), 1);
    let mean_gx = B::float_mean_dim(B::float_mul(g.clone(), x_hat.clone()), 1);
    let dx = B::float_mul(
        B::float_sub(B::float_sub(g, mean_g), B::float_mul(x_hat, mean_gx)),
        r,
    );
    (
        B::float_reshape(dx, shape),
        vector::<B>(dgamma),
        vector::<B>(dbeta),
    )
}
