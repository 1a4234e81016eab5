//! The fused path of every layer ([`ComputePath::Fused`](crate::ComputePath::Fused)): three
//! normalization ops, each recorded as **one** autodiff node with a closed-form backward.
//!
//! | op | layers | statistics per |
//! |---|---|---|
//! | `batch_norm_train_fused` | BatchNorm and BatchNormAct (training) | channel |
//! | `batch_norm_eval_fused` | BatchNorm, BatchNormAct and InstanceNorm with running statistics | (given) |
//! | `group_norm_fused` | GroupNorm, InstanceNorm (`G = C`), LayerNorm (`[M, K]` as `[M, K, 1]`, `G = 1`) | row of a group |
//!
//! Backends: flex runs hand-written kernels ([`flex`]: rayon over channels or rows, one or
//! two reads of the input, no temporaries of the input's size); CubeCL (`Cube`: wgpu, CUDA,
//! ROCm, Metal) runs `#[cube(launch)]` kernels in `f32` ([`cube`]), queued as custom operations
//! when Burn's fusion wraps it ([`fusion`]); every other backend runs
//! the same math composed from Burn's tensor ops ([`composed`]). Backward, with `x̂ = (x - μ)·r`,
//! `r = 1/sqrt(var + eps)` and `m` values per statistic:
//! - batch statistics: `dx = γr (dy - Σdy/m - x̂ Σ(dy·x̂)/m)`, `dγ = Σ dy·x̂`, `dβ = Σ dy`;
//! - running statistics (constants): `dx = γr dy`, same `dγ`, `dβ`;
//! - group norm: `g = dy·γ`, `dx = r (g - mean(g) - x̂ mean(g·x̂))` per row;
//! - an activation after BatchNorm ([`Activation`]): `dy` becomes `dy·f'(z)`, computed from the
//!   op's output `y = f(z)`, which the node then keeps, before the formulas above.

// The generated dispatch names NdArray, deprecated upstream but still one of our backends.
#![allow(deprecated)]
// With no backend feature, the generated dispatch has no arm that uses the ops' arguments.
#![cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "cube")),
    allow(unused_variables)
)]

mod autodiff;
mod composed;
#[cfg(feature = "flex")]
mod cpu;
#[cfg(feature = "cube")]
mod cube;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "cube")]
mod fusion;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDeviceId, backend_extension};
use burn::tensor::{Device, Tensor};

use crate::Activation;

/// The normalization ops of this crate's fused path, as a Burn backend extension.
///
/// Flex overrides every op with a CPU kernel (f32 and f64), and Cube with GPU kernels (f32);
/// other dtypes and the other backends use these default bodies, built from Burn's tensor
/// ops. `Autodiff` records each
/// op as one node whose backward is [`NormGradKernels`].
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "cube"),
    Autodiff
)]
pub trait NormKernels: Backend {
    /// `(y, mean, biased variance)` of `x: [N, C, ...]` normalized per channel over the
    /// batch and every position, scaled by `gamma` and shifted by `beta` (`[C]` each), then
    /// passed through `activation` if there is one.
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::batch_norm_train_fused::<Self>(x, gamma, beta, epsilon, activation)
    }

    /// `y = f((x - mean) / sqrt(var + eps) · gamma + beta)` per channel of `x: [N, C, ...]`
    /// with given statistics (`[C]` each, treated as constants), `f` the `activation` or the
    /// identity.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> FloatTensor<Self> {
        composed::batch_norm_eval_fused::<Self>(x, gamma, beta, mean, var, epsilon, activation)
    }

    /// `(y, mean, biased variance)` of `x: [N, C, ...]` normalized per sample and group of
    /// `C / groups` channels, then scaled and shifted per channel (`gamma`, `beta`: `[C]`).
    /// The statistics are `[N · groups]`, sample-major.
    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::group_norm_fused::<Self>(x, gamma, beta, groups, epsilon)
    }
}

/// The closed-form backwards of [`NormKernels`]' ops: `(dx, dgamma, dbeta)` for the output
/// gradient `dy`, from the input and the statistics the forward saved.
pub trait NormGradKernels: Backend {
    /// Backward of [`NormKernels::batch_norm_train_fused`] (`batch_stats`) or
    /// [`NormKernels::batch_norm_eval_fused`] (`!batch_stats`: the statistics are constants).
    /// `activated` is the forward's activation with the op's output, when it had one.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
        batch_stats: bool,
        activated: Option<(Activation, FloatTensor<Self>)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::batch_norm_fused_backward::<Self>(
            x,
            gamma,
            mean,
            var,
            epsilon,
            dy,
            batch_stats,
            activated,
        )
    }

    /// Backward of [`NormKernels::group_norm_fused`].
    #[allow(clippy::too_many_arguments)]
    fn group_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::group_norm_fused_backward::<Self>(x, gamma, mean, var, groups, epsilon, dy)
    }
}

#[cfg(feature = "ndarray")]
impl NormKernels for burn::backend::NdArray {}
#[cfg(feature = "ndarray")]
impl NormGradKernels for burn::backend::NdArray {}

/// The backend of `device`, from the upper byte of its dispatch type id.
fn backend(device: &Device) -> Option<DispatchDeviceId> {
    let id = burn::backend::Device::to_id(device.as_dispatch()).type_id >> 8;
    DispatchDeviceId::try_from(id).ok()
}

/// Whether this build implements [`NormKernels`] for the backend of `device`. The
/// extension's dispatch covers only the backends named in its attribute and panics on any
/// other (LibTorch, the remote backend, a cubecl runtime when this crate was built without
/// `cube`), so the layers take the composed path there instead.
pub(crate) fn covers(device: &Device) -> bool {
    has_kernels(device)
        || (cfg!(feature = "ndarray") && matches!(backend(device), Some(DispatchDeviceId::NdArray)))
}

/// Whether this build of bn-layers runs hand-written kernels for `device`'s backend on the
/// fused path ([`ComputePath::Fused`](crate::ComputePath::Fused)): flex with the `flex`
/// feature, Burn's `Cube` backend (any CubeCL runtime, with or without Burn's fusion) with
/// `cube`, with or without autodiff. Elsewhere the layers compute the same formulas from
/// Burn's tensor ops: the same results, slower.
///
/// ```
/// use burn::tensor::Device;
///
/// assert_eq!(bn_layers::has_kernels(&Device::flex()), cfg!(feature = "flex"));
/// ```
pub fn has_kernels(device: &Device) -> bool {
    let backend = backend(device);
    (cfg!(feature = "flex") && matches!(backend, Some(DispatchDeviceId::Flex)))
        || (cfg!(feature = "cube") && matches!(backend, Some(DispatchDeviceId::Cube)))
}

/// [`NormKernels::batch_norm_train_fused`] on `Tensor`s: `(y, mean, biased variance)`, the
/// statistics detached.
pub(crate) fn batch_norm_train_fused<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    activation: Option<Activation>,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let (y, mean, var) = <Dispatch as NormKernels>::batch_norm_train_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        activation,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

/// [`NormKernels::batch_norm_eval_fused`] on `Tensor`s.
pub(crate) fn batch_norm_eval_fused<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
    activation: Option<Activation>,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as NormKernels>::batch_norm_eval_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        var.into_dispatch(),
        epsilon,
        activation,
    ))
}

/// [`NormKernels::group_norm_fused`] on `Tensor`s: `(y, mean, biased variance)`, the statistics
/// `[N · groups]` and detached.
pub(crate) fn group_norm_fused<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    groups: usize,
    epsilon: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let (y, mean, var) = <Dispatch as NormKernels>::group_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        groups,
        epsilon,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "flex")]
    fn the_flex_kernels_cover_flex_devices_with_and_without_autodiff() {
        assert!(covers(&Device::flex()));
        assert!(covers(&Device::flex().autodiff()));
        assert!(has_kernels(&Device::flex().autodiff()));
    }

    #[test]
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    fn ndarray_runs_the_fused_ops_from_tensor_ops_not_kernels() {
        assert!(covers(&Device::ndarray()));
        assert!(!has_kernels(&Device::ndarray()));
    }
}
