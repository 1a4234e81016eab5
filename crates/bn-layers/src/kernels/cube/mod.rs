//! The kernels on Burn's CubeCL backend (`CubeBackend`: wgpu here, and the same source on
//! CUDA, ROCm and Metal): `#[cube(launch)]` kernels in `f32` with `f32` accumulation. Other
//! dtypes take the composed path. With Burn's `fusion` feature, `burn::backend::Cube` is
//! `Fusion<CubeBackend>`, whose ops queue these kernels as custom operations
//! ([`super::fusion`]).
//!
//! - **Statistics** (`device::set_moments`): one cube per channel (BatchNorm) or per row (GroupNorm,
//!   the rows of `[N·G, K]` seen as the channels of `[1, N·G, K]`). Each unit strides over the
//!   set, the partial sums meet in a shared-memory tree ([`device::cube_sum`]). The mean is
//!   taken about the set's first value (the shifted-data algorithm), the variance about the
//!   mean, `Σ(x - μ)²`, in a second read, never `Σx² - (Σx)²/m`.
//! - **Centring**: `x - μ` is `(x - hi) - lo`, `hi` the set's first value (or the saved mean)
//!   and `lo` the rest of the mean, so a large mean costs no digits. The backward's sums are
//!   about the saved mean and re-centred by `Σ(x - μ)` (zero for the exact mean), as on flex.
//! - **Outputs and `dx`**: one unit per value, the per-set coefficients computed once by a
//!   small kernel with one unit per channel or row.
//! - **Activations** after BatchNorm run as Cube's own `sigmoid`/`relu` ops and their
//!   backwards, one more elementwise pass each way.
//!
//! No kernel binds more than six buffers (WebGPU guarantees eight storage buffers per stage
//! and cubecl takes one), a cube has at most 256 units, and its shared memory is at most
//! 3 KiB. `launch` is the checked launch (the unchecked one is `unsafe`, forbidden here).
//!
//! [`device`] holds the kernels, [`host`] their launches per op; this module decides which
//! calls take them.

mod device;
mod host;

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use super::{NormGradKernels, NormKernels, composed};
use crate::Activation;

/// Whether the kernels take this call: every tensor `f32`.
fn runs_kernels(tensors: &[&CubeTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

impl NormKernels for CubeBackend {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &beta]) {
            return composed::batch_norm_train_fused::<Self>(x, gamma, beta, epsilon, activation);
        }
        let (y, mean, var) = host::batch_norm_train(x, gamma, beta, epsilon);
        let y = composed::activate::<Self>(y, activation);
        (y, mean, var)
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> FloatTensor<Self> {
        if !runs_kernels(&[&x, &gamma, &beta, &mean, &var]) {
            let act = activation;
            return composed::batch_norm_eval_fused::<Self>(
                x, gamma, beta, mean, var, epsilon, act,
            );
        }
        let y = host::batch_norm_eval(x, (gamma, beta), mean, var, epsilon);
        composed::activate::<Self>(y, activation)
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &beta]) {
            return composed::group_norm_fused::<Self>(x, gamma, beta, groups, epsilon);
        }
        host::group_norm(x, gamma, beta, groups, epsilon)
    }
}

impl NormGradKernels for CubeBackend {
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
        let dy = composed::activation_backward::<Self>(dy, activated);
        if !runs_kernels(&[&x, &gamma, &mean, &var, &dy]) {
            return composed::batch_norm_fused_backward::<Self>(
                x,
                gamma,
                mean,
                var,
                epsilon,
                dy,
                batch_stats,
                None,
            );
        }
        host::batch_norm_backward(x, gamma, mean, var, epsilon, dy, batch_stats)
    }

    fn group_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &mean, &var, &dy]) {
            return composed::group_norm_fused_backward::<Self>(
                x, gamma, mean, var, groups, epsilon, dy,
            );
        }
        host::group_norm_backward(x, gamma, mean, var, groups, epsilon, dy)
    }
}
