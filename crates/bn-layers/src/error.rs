//! The one error type of every layer in this crate.

use thiserror::Error;

/// Why a normalization layer refused a configuration or an input.
///
/// Each variant matches one family of errors PyTorch raises for the same call, so code ported
/// from PyTorch fails in the same places. `forward` and `init` panic with the `Display`
/// message of this error; `try_forward` and `try_init` return it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NormError {
    /// The input has a rank the layer does not accept (PyTorch: `expected 4D input (got 3D input)`).
    #[error("{layer}: expected {expected} input, got a {got}D input of shape {shape:?}")]
    InvalidRank {
        /// The layer that rejected the input.
        layer: &'static str,
        /// The accepted ranks, in words (`"2D or 3D"`).
        expected: &'static str,
        /// The rank that was given.
        got: usize,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// The channel axis of the input does not match the layer's `num_features`/`num_channels`,
    /// or (GroupNorm) is not divisible by `num_groups`.
    #[error("{layer}: {reason}; input shape {shape:?}")]
    ChannelMismatch {
        /// The layer that rejected the input.
        layer: &'static str,
        /// What does not match, with both numbers.
        reason: String,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// Batch statistics were requested over a single value per channel or group
    /// (PyTorch: `Expected more than 1 value per channel when training`).
    #[error(
        "{layer}: expected more than 1 {per} to compute statistics, got input of shape \
         {shape:?}; {hint}"
    )]
    TooFewValues {
        /// The layer that rejected the input.
        layer: &'static str,
        /// What each statistic is computed over (`"value per channel"`, `"spatial element"`).
        per: &'static str,
        /// What to do about it.
        hint: &'static str,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// The trailing dimensions of a LayerNorm input are not `normalized_shape`.
    #[error(
        "LayerNorm: given normalized_shape={normalized_shape:?}, expected input with shape \
         [*, {}], but got input of shape {shape:?}",
        join(normalized_shape)
    )]
    NormalizedShapeMismatch {
        /// The layer's `normalized_shape`.
        normalized_shape: Vec<usize>,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// GroupNorm's `num_channels` is not divisible by `num_groups`.
    #[error(
        "GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
    )]
    GroupsNotDivisible {
        /// The configured number of groups.
        num_groups: usize,
        /// The configured number of channels.
        num_channels: usize,
    },
    /// A configuration value is out of its domain (zero features, negative `eps`, momentum
    /// outside `[0, 1]`, `eps = 0` while training, ...).
    #[error("{layer}: invalid configuration: {reason}")]
    InvalidConfig {
        /// The layer whose configuration is invalid.
        layer: &'static str,
        /// Which field is wrong and why, with its value.
        reason: String,
    },
    /// A BatchNorm cannot be folded into the layer before it: it is in training mode, it keeps
    /// no running statistics, or the two layers disagree on the channel count.
    #[error("cannot fold BatchNorm into {into}: {reason}")]
    NotFoldable {
        /// The layer the BatchNorm was to be folded into (`"Linear"`, `"Conv2d"`).
        into: &'static str,
        /// Why not, with the numbers.
        reason: String,
    },
    /// This build of bn-layers has no implementation of an op the layer cannot do without
    /// for the input's backend: SyncBatchNorm's in-process cross-replica sum, whose backward
    /// is itself a cross-replica sum, exists only for flex, ndarray and Burn's `Cube`, each
    /// with bn-layers' feature of the same name (`cube` or `wgpu` for `Cube`).
    #[error(
        "{layer}: {op} is not available for the backend of device {device} in this build; \
         enable bn-layers' feature for it (flex, ndarray, or cube/wgpu for CubeCL)"
    )]
    UnsupportedBackend {
        /// The layer that needs the op.
        layer: &'static str,
        /// The op it needs.
        op: &'static str,
        /// The input's device.
        device: String,
    },
    /// A [`SyncBatchNorm`](crate::SyncBatchNorm)'s replica group has failed (a peer panicked
    /// or failed, or the replicas fell out of step), so the statistics cannot be summed.
    #[error("SyncBatchNorm: cannot synchronize: {reason}")]
    ReplicaGroupFailed {
        /// The group's failure, naming the replica and what happened.
        reason: String,
    },
}

impl NormError {
    /// The variant's name, as the conformance files spell it (`"TooFewValues"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            NormError::InvalidRank { .. } => "InvalidRank",
            NormError::ChannelMismatch { .. } => "ChannelMismatch",
            NormError::TooFewValues { .. } => "TooFewValues",
            NormError::NormalizedShapeMismatch { .. } => "NormalizedShapeMismatch",
            NormError::GroupsNotDivisible { .. } => "GroupsNotDivisible",
            NormError::InvalidConfig { .. } => "InvalidConfig",
            NormError::NotFoldable { .. } => "NotFoldable",
            NormError::UnsupportedBackend { .. } => "UnsupportedBackend",
            NormError::ReplicaGroupFailed { .. } => "ReplicaGroupFailed",
        }
    }

    /// [`NormError::ChannelMismatch`]: the input has `got` channels where the layer's `field`
    /// (`num_features`, `num_channels`) says `expected`.
    pub(crate) fn wrong_channel_count(
        layer: &'static str,
        field: &str,
        expected: usize,
        got: usize,
        shape: &[usize],
    ) -> Self {
        NormError::ChannelMismatch {
            layer,
            reason: format!("expected {expected} channels ({field}), got {got}"),
            shape: shape.to_vec(),
        }
    }

    /// [`NormError::TooFewValues`] for batch statistics over one value per channel, with the
    /// hint PyTorch users need (BatchNorm, BatchRenorm).
    pub(crate) fn single_value_per_channel(layer: &'static str, shape: Vec<usize>) -> Self {
        NormError::TooFewValues {
            layer,
            per: "value per channel",
            hint: "batch statistics need a batch of at least 2 samples (drop a final batch of 1), or put the layer in evaluation mode (`.valid()`) to use its running statistics",
            shape,
        }
    }

    pub(crate) fn invalid_config(layer: &'static str, reason: impl Into<String>) -> Self {
        NormError::InvalidConfig {
            layer,
            reason: reason.into(),
        }
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks shared by every config: `eps` finite and non-negative, `momentum` in `[0, 1]`.
pub(crate) fn check_eps(layer: &'static str, eps: f64) -> Result<(), NormError> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(NormError::invalid_config(
            layer,
            format!("eps must be finite and >= 0, got {eps}"),
        ))
    }
}

pub(crate) fn check_momentum(layer: &'static str, momentum: Option<f64>) -> Result<(), NormError> {
    match momentum {
        Some(m) if !(0.0..=1.0).contains(&m) => Err(NormError::invalid_config(
            layer,
            format!("momentum must be within [0, 1] or None, got {m}"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_nonzero(
    layer: &'static str,
    field: &str,
    value: usize,
) -> Result<(), NormError> {
    if value == 0 {
        Err(NormError::invalid_config(
            layer,
            format!("{field} must be greater than zero"),
        ))
    } else {
        Ok(())
    }
}

/// PyTorch rejects `eps <= 0` whenever batch statistics are computed.
pub(crate) fn check_eps_for_batch_stats(layer: &'static str, eps: f64) -> Result<(), NormError> {
    if eps > 0.0 {
        Ok(())
    } else {
        Err(NormError::invalid_config(
            layer,
            format!("eps must be positive when batch statistics are used, got {eps}"),
        ))
    }
}
