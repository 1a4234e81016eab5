//! Half precision: every layer normalizes f16 and bf16 inputs with f32 statistics and f32
//! accumulation, as PyTorch's BatchNorm does for half inputs, and returns the input's dtype.
//! Running statistics are kept in f32 on a device whose default float is half (a half
//! model's `running_var` would underflow, as burn-nn's does); parameters keep the dtype they
//! were built or loaded in, and are cast to the computation's dtype where they are used.

use burn::tensor::{DType, Device, FloatDType, Tensor};

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

/// `tensor` in `dtype`: itself when it has it already, else cast (a differentiable op, so a
/// half parameter used in an f32 computation still receives its gradient, in half).
pub(crate) fn in_dtype<const D: usize>(tensor: Tensor<D>, dtype: DType) -> Tensor<D> {
    if tensor.dtype() == dtype {
        tensor
    } else {
        tensor.cast(dtype)
    }
}

/// The dtype of a layer's running statistics: `chosen` when the configuration names one,
/// else the device's default float, except f32 where that default is f16 or bf16.
pub(crate) fn statistics_dtype(chosen: Option<FloatDType>, device: &Device) -> DType {
    let dtype = chosen.unwrap_or_else(|| match device.settings().float_dtype {
        FloatDType::F16 | FloatDType::BF16 => FloatDType::F32,
        other => other,
    });
    dtype.into()
}

#[cfg(test)]
mod tests {
    //! Every layer on a bf16 and an f16 input: the input's dtype back, and the values of its
    //! f32 output on the same (half-rounded) input within 1e-2. PyTorch's own half results
    //! are the conformance runner's `half_*` golden cases (`tests/data/pytorch_golden.json`).

    use burn::module::Module;
    use burn::tensor::{DType, Distribution, Tensor};

    use crate::test_util::train_device;
    use crate::*;

    fn assert_half_matches_f32(name: &str, forward: impl Fn(Tensor<4>) -> Tensor<4>) {
        let device = train_device();
        for half in [DType::BF16, DType::F16] {
            let x = Tensor::<4>::random([4, 3, 2, 2], Distribution::Normal(1.0, 2.0), &device)
                .cast(half);
            let y = forward(x.clone());
            assert_eq!(y.dtype(), half, "{name} {half:?}");
            let want: Vec<f32> = forward(x.cast(DType::F32))
                .into_data()
                .try_to_vec()
                .unwrap();
            let got: Vec<f32> = y.cast(DType::F32).into_data().try_to_vec().unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-2 * w.abs().max(1.0),
                    "{name} {half:?}[{i}]: {g} in half, {w} in f32"
                );
            }
        }
    }

    #[test]
    fn every_layer_takes_half_inputs_and_returns_their_dtype() {
        let device = train_device();
        // Batch statistics in training mode, running ones in evaluation mode.
        let bn = BatchNormConfig::new_2d(3).init(&device);
        assert_half_matches_f32("BatchNorm", |x| bn.forward(x));
        let eval = bn.valid();
        assert_half_matches_f32("BatchNorm (eval)", |x| eval.forward(x.without_autodiff()));
        // Two ghost batches of 2.
        let ghost = GhostBatchNormConfig::new(BatchNormConfig::new_2d(3), 2).init(&device);
        assert_half_matches_f32("GhostBatchNorm", |x| ghost.forward(x));
        let instance = InstanceNormConfig::new_2d(3).init(&device);
        assert_half_matches_f32("InstanceNorm", |x| instance.forward(x));
        let group = GroupNormConfig::new(3, 3).init(&device);
        assert_half_matches_f32("GroupNorm", |x| group.forward(x));
        let layer = LayerNormConfig::new(vec![3, 2, 2]).init(&device);
        assert_half_matches_f32("LayerNorm", |x| layer.forward(x));
        let rms = RmsNormConfig::new(vec![2])
            .with_eps(Some(1e-5))
            .init(&device);
        assert_half_matches_f32("RmsNorm", |x| rms.forward(x));
        // In its warm-up, where r = 1 and d = 0 whatever the running statistics.
        let renorm = BatchRenormConfig::new(3).init(&device);
        assert_half_matches_f32("BatchRenorm", |x| renorm.forward(x));
        let frozen = FrozenBatchNorm::from_batch_norm(&BatchNormConfig::new_2d(3).init(&device));
        assert_half_matches_f32("FrozenBatchNorm", |x| frozen.forward(x));
    }
}
