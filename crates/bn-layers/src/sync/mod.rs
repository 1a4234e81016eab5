//! Synchronized batch normalization for data-parallel training: [`SyncBatchNorm`] and the
//! [`ReplicaGroup`] its replicas reduce their statistics in.

mod group;
mod op;
mod reducer;
mod sync_batch_norm;

pub use group::{Replica, ReplicaGroup};
pub use op::ReplicaSumBackend;
pub use reducer::StatsReducer;
pub use sync_batch_norm::SyncBatchNorm;
