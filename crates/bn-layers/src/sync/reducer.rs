//! Where [`SyncBatchNorm`](super::SyncBatchNorm)'s per-channel sums are added up: one
//! interface over the two ways to reduce across replicas.

use burn::tensor::distributed::{ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};

use super::group::Replica;
use super::op::replica_sum;

/// How replicas sum their per-channel statistics (and, in the backward pass, the gradients
/// of those sums).
#[derive(Debug, Clone)]
pub enum StatsReducer {
    /// Replicas in this process, one thread each, on any backend: a [`ReplicaGroup`]
    /// member. Tested here on flex, ndarray and wgpu.
    ///
    /// [`ReplicaGroup`]: super::ReplicaGroup
    Replicas(Replica),
    /// Burn's differentiable collective `all_reduce` over these devices (one replica per
    /// device or process, under Burn's `DistributedContext` and DDP strategy). It needs a
    /// runtime with a transport between devices, such as CUDA with NCCL; flex, ndarray and
    /// wgpu have none and panic, so this path is **untested** in this project.
    Collective(Vec<Device>),
}

impl StatsReducer {
    /// The element-wise sum of `x` over the replicas, differentiable. `site` names the
    /// reduction for in-process groups.
    pub(crate) fn sum(&self, x: Tensor<1>, site: u64) -> Tensor<1> {
        match self {
            StatsReducer::Replicas(replica) => replica_sum(x, replica, site),
            StatsReducer::Collective(devices) => {
                all_reduce(x, ReduceOperation::Sum, devices.clone()).resolve()
            }
        }
    }
}

impl From<Replica> for StatsReducer {
    fn from(replica: Replica) -> Self {
        StatsReducer::Replicas(replica)
    }
}
