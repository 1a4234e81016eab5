//! Evaluating a classifier on a whole split, batch by batch, without burn-train: accuracy,
//! mean cross-entropy and the first logits.

use bn_models::Classify;
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor};

use crate::data::Examples;
use crate::loss::{correct_predictions, cross_entropy};

/// What a classifier did on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Examples classified correctly.
    pub correct: usize,
    /// Examples seen.
    pub total: usize,
    /// The sum over examples of the cross-entropy loss.
    pub loss_sum: f64,
    /// The logits of the first `keep_logits` examples, one row per example.
    pub first_logits: Vec<Vec<f32>>,
}

impl Evaluation {
    /// `correct / total`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// The mean cross-entropy loss per example.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.total.max(1) as f64
    }
}

/// Runs `model` over all of `data` in batches of `batch_size`, in whatever mode the model is
/// in (call [`valid`](burn::module::Module::valid) first for PyTorch's `model.eval()`).
///
/// # Panics
/// If `batch_size` is zero.
pub fn evaluate<M, S>(
    model: &M,
    data: &S,
    batch_size: usize,
    keep_logits: usize,
    device: &Device,
) -> Evaluation
where
    M: Classify<Input = S::Input>,
    S: Examples,
{
    assert!(batch_size > 0, "evaluate: batch_size must be positive");
    let mut evaluation = Evaluation {
        correct: 0,
        total: 0,
        loss_sum: 0.0,
        first_logits: Vec::new(),
    };
    let batcher = S::Batcher::default();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size) {
        let items = chunk
            .iter()
            .map(|&i| data.get(i).expect("indices below len()"))
            .collect();
        let batch = batcher.batch(items, device);
        let logits = model.classify(batch.inputs);
        let loss = cross_entropy(logits.clone(), batch.targets.clone());
        evaluation.loss_sum += loss.into_scalar::<f64>() * chunk.len() as f64;
        evaluation.correct += correct_predictions(logits.clone(), batch.targets);
        evaluation.total += chunk.len();
        let wanted = keep_logits.saturating_sub(evaluation.first_logits.len());
        if wanted > 0 {
            evaluation.first_logits.extend(rows(logits, wanted));
        }
    }
    evaluation
}

/// The first `n` rows of `logits` as f32 vectors.
fn rows(logits: Tensor<2>, n: usize) -> Vec<Vec<f32>> {
    let [batch, classes] = logits.dims();
    let n = n.min(batch);
    let values: Vec<f32> = logits
        .narrow(0, 0, n)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("converted to f32");
    values.chunks(classes).map(<[f32]>::to_vec).collect()
}
