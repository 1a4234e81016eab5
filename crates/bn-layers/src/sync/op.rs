//! The custom autodiff op behind [`SyncBatchNorm`](super::SyncBatchNorm): a sum across the
//! replicas of a [`ReplicaGroup`](super::ReplicaGroup) whose backward is again a sum across the
//! replicas, as `torch.distributed.all_reduce` is inside PyTorch's `SyncBatchNorm`.
//!
//! Let replica `r` contribute `s_r` and every replica use `S = Σ_q s_q`. The gradient of the
//! total loss `L = Σ_q L_q` with respect to `s_r` is `Σ_q ∂L_q/∂S`: each replica's backward
//! receives its own `∂L_r/∂S` and sums it across the group. Built as a Burn backend extension
//! (one implementation per backend, plus the `Autodiff` one that records the backward node).

// The generated dispatch names NdArray, deprecated upstream but still one of our backends.
#![allow(deprecated)]
// With no backend feature, the generated dispatch has no arm that uses the ops' arguments.
#![cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "cube")),
    allow(unused_variables)
)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData, try_read_sync};

use super::group::Replica;

/// Sums a small tensor across the replicas of a group, with a backward that sums the
/// replicas' gradients again (as `torch.distributed.all_reduce` inside PyTorch's
/// `SyncBatchNorm`).
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "cube"),
    Autodiff
)]
pub trait ReplicaSumBackend: Backend {
    /// The element-wise sum of `x` over every replica of `replica`'s group, at reduction
    /// `site`.
    fn replica_sum(x: FloatTensor<Self>, replica: Replica, site: u64) -> FloatTensor<Self> {
        host_sum::<Self>(x, &replica, site)
    }
}

#[cfg(feature = "flex")]
impl ReplicaSumBackend for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
impl ReplicaSumBackend for burn::backend::NdArray {}
#[cfg(feature = "cube")]
impl ReplicaSumBackend for burn::backend::Cube {}

/// Reads `x` back to the host, sums it across the group in `f64`, and writes the sum back in
/// `x`'s dtype on `x`'s device.
fn host_sum<B: Backend>(x: FloatTensor<B>, replica: &Replica, site: u64) -> FloatTensor<B> {
    let device = x.device();
    let data = try_read_sync(B::float_into_data(x))
        .expect("reading a tensor back synchronously is supported on this platform")
        .expect("a statistics tensor can be read back to the host");
    let (shape, dtype) = (data.shape().clone(), data.dtype());
    let values = data
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("converted to f64 above");
    let sum = replica.all_reduce_sum(site, values);
    B::float_from_data(TensorData::new(sum, shape).convert_dtype(dtype), &device)
}

impl<B: Backend + ReplicaSumBackend, C: CheckpointStrategy> ReplicaSumBackend for Autodiff<B, C> {
    fn replica_sum(x: FloatTensor<Self>, replica: Replica, site: u64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ReplicaSumBackward;

        impl<B: Backend + ReplicaSumBackend> Backward<B, 1> for ReplicaSumBackward {
            type State = (Replica, u64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (replica, site) = ops.state;
                // The backward of a sum over replicas is a sum over replicas of the gradients.
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::replica_sum(grad, replica, site ^ BACKWARD_SITE)
                });
            }
        }

        match ReplicaSumBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let sum = B::replica_sum(x.into_primitive(), replica.clone(), site);
                prep.finish((replica, site), sum)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::replica_sum(x.into_primitive(), replica, site))
            }
        }
    }
}

/// Marks a backward reduction, so it never matches a forward one by mistake.
const BACKWARD_SITE: u64 = 1 << 63;

/// The element-wise sum of `x` over the replicas of `replica`'s group, differentiable: the
/// gradient flowing back into `x` is the sum of every replica's gradient of the result.
/// `site` names this reduction; every replica must reduce the same sites in the same order.
pub(crate) fn replica_sum(x: Tensor<1>, replica: &Replica, site: u64) -> Tensor<1> {
    let sum =
        <Dispatch as ReplicaSumBackend>::replica_sum(x.into_dispatch(), replica.clone(), site);
    Tensor::from_dispatch(sum)
}
