//! PyTorch's `1d`/`2d`/`3d` input-rank rules.

use serde::{Deserialize, Serialize};

use crate::NormError;

/// Which input ranks a layer accepts: PyTorch's `BatchNorm1d`/`2d`/`3d` and
/// `InstanceNorm1d`/`2d`/`3d` split one algorithm into classes that differ only in this rule.
///
/// | rule  | BatchNorm accepts          | InstanceNorm accepts (unbatched first) |
/// |-------|----------------------------|----------------------------------------|
/// | `Any` | `[N, C, ...]` (rank ≥ 2)   | `[N, C, ...]` (rank ≥ 3, always batched) |
/// | `D1`  | `[N, C]`, `[N, C, L]`      | `[C, L]`, `[N, C, L]`                  |
/// | `D2`  | `[N, C, H, W]`             | `[C, H, W]`, `[N, C, H, W]`            |
/// | `D3`  | `[N, C, D, H, W]`          | `[C, D, H, W]`, `[N, C, D, H, W]`      |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InputRank {
    /// Any rank the algorithm can work on (Burn's own convention).
    #[default]
    Any,
    /// PyTorch's `1d` classes.
    D1,
    /// PyTorch's `2d` classes.
    D2,
    /// PyTorch's `3d` classes.
    D3,
}

/// Checks that `layer`'s input has a channel axis: `[N, C, ...]`, rank 2 or more.
pub(crate) fn check_channels_axis(layer: &'static str, shape: &[usize]) -> Result<(), NormError> {
    rank_result(layer, shape.len() >= 2, "at least 2D", shape)
}

impl InputRank {
    /// Checks a BatchNorm input rank against the rule.
    pub(crate) fn check_batch_norm(self, shape: &[usize]) -> Result<(), NormError> {
        let rank = shape.len();
        let (ok, expected) = match self {
            InputRank::Any => return check_channels_axis("BatchNorm", shape),
            InputRank::D1 => (rank == 2 || rank == 3, "2D or 3D"),
            InputRank::D2 => (rank == 4, "4D"),
            InputRank::D3 => (rank == 5, "5D"),
        };
        rank_result("BatchNorm", ok, expected, shape)
    }

    /// Checks an InstanceNorm input rank and tells whether the input is unbatched
    /// (`[C, ...]`, one rank below the batched form).
    pub(crate) fn check_instance_norm(self, shape: &[usize]) -> Result<bool, NormError> {
        let rank = shape.len();
        let (batched, expected) = match self {
            InputRank::Any => {
                rank_result("InstanceNorm", rank >= 3, "at least 3D", shape)?;
                return Ok(false);
            }
            InputRank::D1 => (3, "2D or 3D"),
            InputRank::D2 => (4, "3D or 4D"),
            InputRank::D3 => (5, "4D or 5D"),
        };
        rank_result(
            "InstanceNorm",
            rank == batched || rank + 1 == batched,
            expected,
            shape,
        )?;
        Ok(rank + 1 == batched)
    }
}

fn rank_result(
    layer: &'static str,
    ok: bool,
    expected: &'static str,
    shape: &[usize],
) -> Result<(), NormError> {
    if ok {
        Ok(())
    } else {
        Err(NormError::InvalidRank {
            layer,
            expected,
            got: shape.len(),
            shape: shape.to_vec(),
        })
    }
}
