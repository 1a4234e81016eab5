//! The fused training op of [`ComputePath::Fused`](crate::ComputePath::Fused) BatchNorm: the
//! statistics, the normalization and a closed-form backward, recorded as **one** autodiff node,
//! computed on a `[N, C, S]` view of the input.
//!
//! Burn's own `batch_norm_train` default (used by flex, ndarray and wgpu in 0.22) swaps the
//! batch and channel axes to reduce over `[C, N·S]`, which copies the whole input twice in the
//! forward and twice more in the backward. Reducing over axes 0 and 2 of the `[N, C, S]` view
//! reads the input in place, and folding the per-channel factors saves full-size passes.
//! Backward (`m = N·S`, `x̂ = (x - mean) / sqrt(var + eps)`):
//! `dx = γ / sqrt(var + eps) · (dy - Σdy / m - x̂ · Σ(dy·x̂) / m)`, `dγ = Σ(dy·x̂)`, `dβ = Σdy`.

// The generated dispatch names NdArray, deprecated upstream but still one of our backends.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Scalar, Shape, TensorMetadata, backend_extension,
};
use burn::tensor::Tensor;

/// Batch normalization with batch statistics, as one op with its own backward.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu"),
    Autodiff
)]
pub trait BatchNormKernels: Backend {
    /// `(y, mean, biased variance)` of `x: [N, C, ...]` normalized per channel, scaled by
    /// `gamma` and shifted by `beta` (`[C]` each).
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        forward::<Self>(x, gamma, beta, epsilon)
    }
}

#[cfg(feature = "flex")]
impl BatchNormKernels for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
impl BatchNormKernels for burn::backend::NdArray {}
#[cfg(feature = "wgpu")]
impl BatchNormKernels for burn::backend::Cube {}

/// `[N, C, S]` and `[1, C, 1]` for an input of shape `[N, C, ...]`.
fn views(shape: &Shape) -> (Shape, Shape, usize) {
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

fn inv_std<B: Backend>(var: FloatTensor<B>, epsilon: f64) -> FloatTensor<B> {
    B::float_recip(B::float_sqrt(B::float_add_scalar(
        var,
        Scalar::Float(epsilon),
    )))
}

/// `x · a + b` with per-channel `[1, C, 1]` coefficients: two passes over `x`.
fn affine<B: Backend>(x: FloatTensor<B>, a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::float_add(B::float_mul(x, a), b)
}

fn forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (view, per_channel, m) = views(&shape);
    let c = shape[1];
    let x = B::float_reshape(x, view);
    let scale = Scalar::Float(1.0 / m as f64);
    let mean = B::float_mul_scalar(channel_sum::<B>(x.clone()), scale);
    // Two passes for the variance (centred squares), as accurate as PyTorch's.
    let centered = B::float_sub(x.clone(), mean.clone());
    let var = B::float_mul_scalar(
        channel_sum::<B>(B::float_mul(centered.clone(), centered)),
        scale,
    );
    // y = x · γ/σ + (β - μ · γ/σ): the normalization folded into one scale and shift.
    let a = B::float_mul(
        B::float_reshape(gamma, per_channel.clone()),
        inv_std::<B>(var.clone(), epsilon),
    );
    let b = B::float_sub(
        B::float_reshape(beta, per_channel),
        B::float_mul(mean.clone(), a.clone()),
    );
    (
        B::float_reshape(affine::<B>(x, a, b), shape),
        B::float_reshape(mean, Shape::new([c])),
        B::float_reshape(var, Shape::new([c])),
    )
}

/// `(dx, dγ, dβ)` for the output gradient `dy`, with `r = 1/σ`, `S₁ = Σdy`,
/// `S₂ = Σ dy·x̂ = r (Σ dy·x - μ S₁)`: `dx = dy · γr + x · b + c` with the per-channel
/// `b = -γ r² S₂ / m` and `c = -γr S₁ / m - b μ`. Two reductions and four elementwise passes.
fn backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    epsilon: f64,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (view, per_channel, m) = views(&shape);
    let c = shape[1];
    let per_m = Scalar::Float(1.0 / m as f64);
    let r = inv_std::<B>(B::float_reshape(var, per_channel.clone()), epsilon);
    let mean = B::float_reshape(mean, per_channel.clone());
    let x = B::float_reshape(x, view.clone());
    let dy = B::float_reshape(dy, view);
    let s1 = channel_sum::<B>(dy.clone());
    let dy_x = channel_sum::<B>(B::float_mul(dy.clone(), x.clone()));
    let s2 = B::float_mul(
        B::float_sub(dy_x, B::float_mul(mean.clone(), s1.clone())),
        r.clone(),
    );
    let gamma_r = B::float_mul(B::float_reshape(gamma, per_channel), r.clone());
    let b = B::float_neg(B::float_mul_scalar(
        B::float_mul(B::float_mul(gamma_r.clone(), r), s2.clone()),
        per_m,
    ));
    let c_term = B::float_neg(B::float_add(
        B::float_mul_scalar(B::float_mul(gamma_r.clone(), s1.clone()), per_m),
        B::float_mul(b.clone(), mean),
    ));
    let dx = B::float_add(B::float_mul(dy, gamma_r), affine::<B>(x, b, c_term));
    (
        B::float_reshape(dx, shape),
        B::float_reshape(s2, Shape::new([c])),
        B::float_reshape(s1, Shape::new([c])),
    )
}

impl<B: Backend + BatchNormKernels, C: CheckpointStrategy> BatchNormKernels for Autodiff<B, C> {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct BatchNormFusedBackward;

        impl<B: Backend> Backward<B, 3> for BatchNormFusedBackward {
            // x and γ are checkpointed; the statistics come along as the forward computed them.
            type State = (
                burn::backend::autodiff::NodeId,
                burn::backend::autodiff::NodeId,
                B::FloatTensorPrimitive,
                B::FloatTensorPrimitive,
                f64,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let dy = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state, mean, var, epsilon) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
                let gamma =
                    checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma_state);
                let (dx, dgamma, dbeta) = backward::<B>(x, gamma, mean, var, epsilon, dy);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, dgamma);
                }
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, dbeta);
                }
            }
        }

        match BatchNormFusedBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (y, mean, var) = B::batch_norm_train_fused(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let state = (x_state, gamma_state, mean.clone(), var.clone(), epsilon);
                let y = prep.finish(state, y);
                (y, Self::from_inner(mean), Self::from_inner(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = B::batch_norm_train_fused(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
        }
    }
}

/// The fused training op on `Tensor`s: `(y, mean, biased variance)`, the statistics detached.
pub(crate) fn batch_norm_train_fused<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let (y, mean, var) = <Dispatch as BatchNormKernels>::batch_norm_train_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}
