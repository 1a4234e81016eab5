//! The choice between the fused kernels and the composed textbook algorithm.

use serde::{Deserialize, Serialize};

/// How a layer computes its forward pass. Both give PyTorch's numbers; they differ in speed
/// and in how readable the code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ComputePath {
    /// One op per layer and mode, each one autodiff node with a closed-form backward
    /// ([`NormKernels`](crate::NormKernels), this crate's backend extension): hand-written
    /// kernels on flex, CubeCL kernels on wgpu, the same math in Burn's tensor ops elsewhere.
    /// The default.
    #[default]
    Fused,
    /// The textbook algorithm in plain tensor ops (mean, variance, normalize, scale and
    /// shift), differentiated op by op: the code to read beside the paper.
    Composed,
}
