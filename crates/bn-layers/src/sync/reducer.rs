//! Where [`SyncBatchNorm`](super::SyncBatchNorm)'s per-channel sums are added up: one
//! interface over the two ways to reduce across replicas.

#[cfg(feature = "collective")]
use burn::tensor::Device;
use burn::tensor::Tensor;
#[cfg(feature = "collective")]
use burn::tensor::distributed::{ReduceOperation, all_reduce};

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
    /// device or process, under Burn's `DistributedContext` and DDP strategy), with the
    /// `collective` feature. It needs a runtime with a transport between devices, such as
    /// CUDA with NCCL; flex, ndarray and wgpu have none and panic. So this path is compiled
    /// and linted in this project's CI, and **never run**.
    #[cfg(feature = "collective")]
    Collective(Vec<Device>),
}

impl StatsReducer {
    /// The reduction site of a new synchronized layer: handed out by the group of a
    /// [`StatsReducer::Replicas`]; a collective needs none (0).
    pub(crate) fn next_site(&self) -> u64 {
        match self {
            StatsReducer::Replicas(replica) => replica.next_site(),
            #[cfg(feature = "collective")]
            StatsReducer::Collective(_) => 0,
        }
    }

    /// Fails an in-process group, so the peers stop waiting for this replica (Burn's
    /// collective has no such signal).
    pub(crate) fn fail(&self, reason: &str) {
        match self {
            StatsReducer::Replicas(replica) => replica.fail(reason),
            #[cfg(feature = "collective")]
            StatsReducer::Collective(_) => {}
        }
    }

    /// Why an in-process group failed, if it has.
    pub(crate) fn failure(&self) -> Option<String> {
        match self {
            StatsReducer::Replicas(replica) => replica.failure(),
            #[cfg(feature = "collective")]
            StatsReducer::Collective(_) => None,
        }
    }

    /// Whether the sum runs through this crate's own cross-replica op (which needs a kernel
    /// for the device), not Burn's collective.
    pub(crate) fn is_in_process(&self) -> bool {
        matches!(self, StatsReducer::Replicas(_))
    }

    /// The element-wise sum of `x` over the replicas, differentiable. `site` names the
    /// reduction for in-process groups.
    pub(crate) fn sum(&self, x: Tensor<1>, site: u64) -> Tensor<1> {
        match self {
            StatsReducer::Replicas(replica) => replica_sum(x, replica, site),
            #[cfg(feature = "collective")]
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
