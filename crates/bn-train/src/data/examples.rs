//! What [`train`](crate::train) and [`evaluate`](crate::evaluate) need of a data set: labelled
//! examples, a way to batch them, and a batch the data-parallel engine can slice.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Int, Tensor};

use super::FashionMnist;

/// A batch of inputs and their labels.
#[derive(Debug, Clone)]
pub struct Batch<I> {
    /// The inputs, batch first: images `[N, 1, 28, 28]`, points `[N, 2]`.
    pub inputs: I,
    /// `[N]` class indices.
    pub targets: Tensor<1, Int>,
}

/// A batch of Fashion-MNIST images, `[N, 1, 28, 28]` with values in `[-1, 1]`.
pub type ImageBatch = Batch<Tensor<4>>;

/// A batch's inputs, which the data-parallel engine slices among its replicas.
pub trait BatchInput: Clone + Send + 'static {
    /// Examples `start..start + len` (along the first, batch dimension).
    fn rows(self, start: usize, len: usize) -> Self;
}

impl<const D: usize> BatchInput for Tensor<D> {
    fn rows(self, start: usize, len: usize) -> Self {
        self.narrow(0, start, len)
    }
}

/// A labelled data set that [`train`](crate::train) learns from and
/// [`evaluate`](crate::evaluate) scores: Fashion-MNIST's images ([`FashionMnist`]) or
/// scikit-learn's two moons ([`Moons`](super::Moons)).
pub trait Examples: Dataset<Self::Item> + Clone + 'static {
    /// One example and its label.
    type Item: Clone + Send + Sync + 'static;
    /// A batch's inputs.
    type Input: BatchInput;
    /// Turns examples into a [`Batch`].
    type Batcher: Batcher<Self::Item, Batch<Self::Input>> + Default + 'static;

    /// The first `n` examples (all of them if `n` is larger).
    fn take(self, n: usize) -> Self;
}

/// Both splits: what a training run learns from and is evaluated on.
#[derive(Debug, Clone)]
pub struct TrainTest<S = FashionMnist> {
    /// The training examples.
    pub train: S,
    /// The test examples.
    pub test: S,
}
