//! BatchNorm recalibration on a data set: [`bn_layers::recalibrate`] over its first examples.

use bn_models::Classify;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::Device;

use crate::data::Examples;

/// Re-estimates the running statistics of every BatchNorm in `model` over the first
/// `examples` examples of `data` (all of them if it holds fewer), in their order, in batches
/// of `batch_size` (the last one shorter), built on `device`: PyTorch's
/// `torch.optim.swa_utils.update_bn` over a `DataLoader` without shuffling (see
/// [`bn_layers::recalibrate`]). A last batch of a single example is left out, as training
/// leaves it out: batch statistics need two. The model comes back in the training mode it
/// had.
///
/// # Panics
/// If `batch_size` is zero.
pub fn recalibrate_on<M, S>(
    model: M,
    data: &S,
    examples: usize,
    batch_size: usize,
    device: &Device,
) -> M
where
    M: Module + Classify<Input = S::Input>,
    S: Examples,
{
    assert!(
        batch_size > 0,
        "recalibrate_on: batch_size must be positive"
    );
    let batcher = S::Batcher::default();
    let mut used = examples.min(data.len());
    if used % batch_size == 1 {
        used -= 1;
    }
    let indices: Vec<usize> = (0..used).collect();
    let batches = indices.chunks(batch_size).map(|chunk| {
        let items = chunk
            .iter()
            .map(|&i| data.get(i).expect("indices below len()"))
            .collect();
        batcher.batch(items, device)
    });
    bn_layers::recalibrate(model, batches, |model: &M, batch| {
        model.classify(batch.inputs);
    })
}
