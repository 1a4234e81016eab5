//! The trailing `normalized_shape` of LayerNorm and RMSNorm: its check at construction, and
//! the `[rows, size]` view of an input over it.

use crate::NormError;
use crate::error::check_nonzero;

/// `prod(normalized_shape)`, once the shape names at least one dimension and none is zero.
pub(crate) fn checked_size(layer: &'static str, shape: &[usize]) -> Result<usize, NormError> {
    if shape.is_empty() {
        return Err(NormError::invalid_config(
            layer,
            "normalized_shape must name at least one dimension",
        ));
    }
    for &dim in shape {
        check_nonzero(layer, "every normalized_shape dimension", dim)?;
    }
    Ok(shape.iter().product())
}

/// `(rows, size)`: how many leading indices an input of shape `dims` has, and how many values
/// each normalizes over.
///
/// # Errors
/// [`NormError::NormalizedShapeMismatch`] when the trailing dimensions are not `shape`.
pub(crate) fn rows_and_size(dims: &[usize], shape: &[usize]) -> Result<(usize, usize), NormError> {
    let k = shape.len();
    if dims.len() < k || dims[dims.len() - k..] != *shape {
        return Err(NormError::NormalizedShapeMismatch {
            normalized_shape: shape.to_vec(),
            shape: dims.to_vec(),
        });
    }
    let leading = &dims[..dims.len() - k];
    Ok((leading.iter().product(), shape.iter().product()))
}
