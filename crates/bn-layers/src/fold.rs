//! Folding an evaluation-mode [`BatchNorm`] into the Linear or Conv2d layer before it.
//!
//! In evaluation mode batch normalization is a fixed per-channel affine map,
//!
//! ```text
//! y = γ · (z − μ) / √(σ² + ε) + β = s · z + (β − s · μ),    s = γ / √(σ² + ε)
//! ```
//!
//! with `μ, σ²` the running statistics. When `z = W·x + b` comes out of a linear layer or a
//! convolution, the map can be moved into its weights, and the BatchNorm disappears:
//!
//! ```text
//! W' = W · s  (per output channel)        b' = (b − μ) · s + β  (b = 0 for a bias-free layer)
//! ```
//!
//! This is the standard inference optimization (e.g. Jacob et al., 2018,
//! <https://arxiv.org/abs/1712.05877>, §3.2). It is exact up to rounding, and only valid in
//! evaluation mode: in training the statistics come from each batch. The folding is computed
//! in the running statistics' dtype (f32 in a half model) and the result stored in the
//! layer's own.

use burn::module::Param;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::precision::in_dtype;
use crate::{BatchNorm, NormError};

/// A Linear layer that computes `bn(linear(x))` for an evaluation-mode `bn`.
///
/// # Shapes
/// - `linear.weight`: `[d_input, d_output]` (Burn's layout); `bn` has `d_output` features.
///
/// # Errors
/// [`NormError::NotFoldable`] when `bn` is in training mode, keeps no running statistics
/// (`track_running_stats = false`), or has a feature count other than `d_output`.
pub fn fold_into_linear(linear: &Linear, bn: &BatchNorm) -> Result<Linear, NormError> {
    let [_, d_output] = linear.weight.dims();
    let (scale, shift) = eval_affine(bn, "Linear", d_output)?;
    let (dtype, stats) = (linear.weight.val().dtype(), scale.dtype());
    let weight = in_dtype(linear.weight.val(), stats) * scale.clone().unsqueeze::<2>();
    let bias = folded_bias(&linear.bias, scale, shift);
    Ok(Linear {
        weight: Param::from_tensor(in_dtype(weight, dtype)),
        bias: Some(Param::from_tensor(in_dtype(bias, dtype))),
    })
}

/// A Conv2d layer that computes `bn(conv(x))` for an evaluation-mode `bn`.
///
/// Stride, padding, dilation and groups are kept; only the weight and bias change.
///
/// # Shapes
/// - `conv.weight`: `[channels_out, channels_in / groups, k_h, k_w]`; `bn` has
///   `channels_out` features.
///
/// # Errors
/// [`NormError::NotFoldable`] when `bn` is in training mode, keeps no running statistics
/// (`track_running_stats = false`), or has a feature count other than `channels_out`.
pub fn fold_into_conv2d(conv: &Conv2d, bn: &BatchNorm) -> Result<Conv2d, NormError> {
    let [channels_out, ..] = conv.weight.dims();
    let (scale, shift) = eval_affine(bn, "Conv2d", channels_out)?;
    let (dtype, stats) = (conv.weight.val().dtype(), scale.dtype());
    let per_channel = scale.clone().reshape([channels_out as i64, 1, 1, 1]);
    let weight = in_dtype(conv.weight.val(), stats) * per_channel;
    let bias = folded_bias(&conv.bias, scale, shift);
    let mut folded = conv.clone();
    folded.weight = Param::from_tensor(in_dtype(weight, dtype));
    folded.bias = Some(Param::from_tensor(in_dtype(bias, dtype)));
    Ok(folded)
}

/// `b · s + shift`, or `shift` alone for a bias-free layer, in the dtype of `scale`.
fn folded_bias(bias: &Option<Param<Tensor<1>>>, scale: Tensor<1>, shift: Tensor<1>) -> Tensor<1> {
    match bias {
        Some(bias) => in_dtype(bias.val(), scale.dtype()) * scale + shift,
        None => shift,
    }
}

/// The per-channel `(s, β − s·μ)` of an evaluation-mode BatchNorm with `channels` features,
/// in the dtype of its running statistics.
fn eval_affine(
    bn: &BatchNorm,
    into: &'static str,
    channels: usize,
) -> Result<(Tensor<1>, Tensor<1>), NormError> {
    let refuse = |reason: String| NormError::NotFoldable { into, reason };
    let Some((mean, var)) = bn.running_stats() else {
        return Err(refuse(
            "the BatchNorm keeps no running statistics (track_running_stats = false), so it \
             normalizes with batch statistics even in evaluation mode"
                .into(),
        ));
    };
    // Where the folded layer runs, on the statistics' device, the BatchNorm would train.
    if bn.training.trains_on(&mean.device()) {
        return Err(refuse(
            "the BatchNorm is in training mode, where it normalizes with each batch's \
             statistics; fold the evaluation-mode model (`model.valid()`)"
                .into(),
        ));
    }
    if bn.num_features != channels {
        return Err(refuse(format!(
            "{into} has {channels} output channels but the BatchNorm has {} features",
            bn.num_features
        )));
    }
    let stats = var.dtype();
    let inv_std = var.add_scalar(bn.eps).sqrt().recip();
    let scale = match &bn.gamma {
        Some(gamma) => in_dtype(gamma.val(), stats) * inv_std,
        None => inv_std,
    };
    let shifted_mean = mean * scale.clone();
    let shift = match &bn.beta {
        Some(beta) => in_dtype(beta.val(), stats) - shifted_mean,
        None => shifted_mean.neg(),
    };
    Ok((scale, shift))
}

#[cfg(test)]
mod tests {
    //! Expected values are computed by hand from the formulas in the module docs.

    use burn::module::RunningState;
    use burn::nn::LinearConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::BatchNormConfig;
    use crate::test_util::{assert_close, eval_device, tensor};

    /// `γ = [2, 0.5]`, `β = [0.1, 0.2]`, `μ = [1, 2]`, `σ² = [3, 0]`, `ε = 1`, so
    /// `s = [2/√4, 0.5/√1] = [1, 0.5]`.
    fn two_channel_bn(device: &Device) -> BatchNorm {
        let mut bn = BatchNormConfig::new(2).with_eps(1.0).init(device);
        bn.gamma = Some(Param::from_tensor(tensor([2.0, 0.5], [2], device)));
        bn.beta = Some(Param::from_tensor(tensor([0.1, 0.2], [2], device)));
        let running = bn.running.as_mut().unwrap();
        running.mean = RunningState::new(tensor([1.0, 2.0], [2], device));
        running.var = RunningState::new(tensor([3.0, 0.0], [2], device));
        bn
    }

    #[test]
    fn linear_weights_and_bias_fold_by_hand() {
        let device = eval_device();
        let mut linear = LinearConfig::new(2, 2).init(&device);
        linear.weight = Param::from_tensor(tensor([1.0, 2.0, 3.0, 4.0], [2, 2], &device));
        linear.bias = Some(Param::from_tensor(tensor([0.5, -1.0], [2], &device)));

        let folded = fold_into_linear(&linear, &two_channel_bn(&device)).unwrap();

        // W' = W · s column-wise; b' = (b − μ)·s + β = [(0.5−1)·1+0.1, (−1−2)·0.5+0.2].
        assert_close(folded.weight.val(), &[1.0, 1.0, 3.0, 2.0], 1e-6);
        assert_close(folded.bias.unwrap().val(), &[-0.4, -1.3], 1e-6);
    }

    #[test]
    fn bias_free_conv_gets_the_shift_as_bias() {
        let device = eval_device();
        let mut conv = Conv2dConfig::new([1, 2], [1, 1])
            .with_bias(false)
            .init(&device);
        conv.weight = Param::from_tensor(tensor([4.0, 6.0], [2, 1, 1, 1], &device));

        let folded = fold_into_conv2d(&conv, &two_channel_bn(&device)).unwrap();

        // W' = [4·1, 6·0.5]; b' = −μ·s + β = [−1+0.1, −1+0.2].
        assert_close(folded.weight.val(), &[4.0, 3.0], 1e-6);
        assert_close(folded.bias.unwrap().val(), &[-0.9, -0.8], 1e-6);
    }

    #[test]
    fn folded_conv_matches_conv_then_bn() {
        let device = eval_device();
        let conv = Conv2dConfig::new([3, 2], [3, 3]).init(&device);
        let bn = two_channel_bn(&device);
        let x = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);

        let expected = bn.forward(conv.forward(x.clone()));
        let folded = fold_into_conv2d(&conv, &bn).unwrap().forward(x);

        let expected: Vec<f64> = expected.into_data().convert::<f64>().try_to_vec().unwrap();
        assert_close(folded, &expected, 1e-6);
    }

    #[test]
    fn training_mode_is_refused() {
        let device = eval_device();
        let linear = LinearConfig::new(3, 2).init(&device);
        let bn = crate::set_training(two_channel_bn(&device), true);
        let err = fold_into_linear(&linear, &bn).unwrap_err();
        assert_eq!(err.kind(), "NotFoldable");
        assert!(err.to_string().contains("training mode"), "{err}");
    }

    #[test]
    fn missing_running_stats_are_refused() {
        let device = eval_device();
        let linear = LinearConfig::new(3, 2).init(&device);
        let bn = BatchNormConfig::new(2)
            .with_track_running_stats(false)
            .init(&device);
        let err = fold_into_linear(&linear, &bn).unwrap_err();
        assert!(err.to_string().contains("no running statistics"), "{err}");
    }

    #[test]
    fn channel_count_mismatch_is_refused() {
        let device = eval_device();
        let linear = LinearConfig::new(3, 5).init(&device);
        let err = fold_into_linear(&linear, &two_channel_bn(&device)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot fold BatchNorm into Linear: Linear has 5 output channels but the \
             BatchNorm has 2 features"
        );
    }
}
