//! The classification objective every training loop here uses, defined once: the mean
//! cross-entropy of a batch's logits (PyTorch's `F.cross_entropy`), and the count of rows
//! whose largest logit is the target (the numerator of accuracy).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` (`[batch, classes]`) against class indices `targets`
/// (`[batch]`), as a one-value tensor.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, targets)
}

/// How many rows of `logits` have their largest value at the row's target class.
pub fn correct_predictions(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let predicted = logits.argmax(1).squeeze_dim::<1>(1);
    predicted.equal(targets).int().sum().into_scalar::<i64>() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn loss_and_count_match_a_hand_computation() {
        let device = Device::flex();
        // Row 0: softmax [1/4, 3/4], target 1, right. Row 1: softmax [e/(1+e), 1/(1+e)],
        // target 1, wrong. Loss: (-ln 0.75 - ln(1/(1+e))) / 2 = 0.800472.
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 3f32.ln(), 1.0, 0.0], [2, 2]),
            &device,
        );
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 1], [2]), &device);
        let loss = cross_entropy(logits.clone(), targets.clone()).into_scalar::<f64>();
        assert!((loss - 0.800472).abs() < 1e-5, "{loss}");
        assert_eq!(correct_predictions(logits, targets), 1);
    }
}
