//! Half-precision inputs: every layer normalizes f16 and bf16 inputs with f32 statistics and
//! f32 accumulation, as PyTorch's BatchNorm does for half inputs beside float parameters, and
//! returns the input's dtype. Parameters and running statistics stay in their own dtype (f32
//! when built on a default device), so a half model keeps full-precision statistics.

use burn::tensor::{DType, Tensor};

/// `normalize(input)`, computed on `input` cast to f32 when it is f16 or bf16 (the result cast
/// back), and on `input` as it is otherwise.
pub(crate) fn in_f32_if_half<const D: usize, E>(
    input: Tensor<D>,
    normalize: impl FnOnce(Tensor<D>) -> Result<Tensor<D>, E>,
) -> Result<Tensor<D>, E> {
    match input.dtype() {
        dtype @ (DType::F16 | DType::BF16) => Ok(normalize(input.cast(DType::F32))?.cast(dtype)),
        _ => normalize(input),
    }
}
