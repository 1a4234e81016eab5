//! Ghost Batch Normalization (Hoffer, Hubara & Soudry, 2017): BatchNorm over small "ghost"
//! batches of a large batch.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::check_nonzero;
use crate::{Activation, BatchNorm, BatchNormConfig, NormError};

/// Configuration of a [`GhostBatchNorm`] layer.
#[derive(Config, Debug)]
pub struct GhostBatchNormConfig {
    /// The BatchNorm every ghost batch goes through (PyTorch's `nn.BatchNorm*d` options).
    pub norm: BatchNormConfig,
    /// Samples per ghost batch (Keras's `virtual_batch_size`); a batch of `N` is split into
    /// `max(1, N / virtual_batch_size)` ghost batches.
    pub virtual_batch_size: usize,
}

/// Ghost Batch Normalization: in training, the batch is split into ghost batches of about
/// `virtual_batch_size` samples, each normalized with its own statistics by the same
/// [`BatchNorm`]; evaluation is the BatchNorm's.
///
/// Based on the paper [Train longer, generalize better: closing the generalization gap in
/// large batch training of neural networks](https://arxiv.org/abs/1705.08741) (Hoffer, Hubara
/// & Soudry, 2017), Algorithm 1: large batches keep the noise of small batches' statistics.
///
/// A batch of `N` becomes `k = max(1, N / virtual_batch_size)` ghost batches in order, as even
/// as possible (the first `N % k` one sample larger), so none is smaller than
/// `virtual_batch_size`. Each goes through the BatchNorm, which updates its running
/// statistics and `num_batches_tracked` once per ghost batch, in order: the paper's update
/// `μ_run = (1 - η)^k μ_run + Σ_l (1 - η)^(k - l) η μ_l`. (Keras's `virtual_batch_size`
/// instead averages the ghost batches' statistics into one update, and needs `N` to be a
/// multiple of it.)
///
/// # Shapes
/// - input: `[N, C, ...]`, as the BatchNorm accepts.
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::{BatchNormConfig, GhostBatchNormConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let layer = GhostBatchNormConfig::new(BatchNormConfig::new_2d(3), 4).init(&device);
/// let y = layer.forward(Tensor::<4>::ones([16, 3, 2, 2], &device));
/// assert_eq!(y.dims(), [16, 3, 2, 2]);
/// assert_eq!(layer.norm.num_batches_tracked(), Some(4)); // four ghost batches of 4
/// ```
#[derive(Module, Debug)]
pub struct GhostBatchNorm {
    /// The batch normalization, with every parameter and buffer.
    pub norm: BatchNorm,
    /// Samples per ghost batch.
    pub virtual_batch_size: usize,
}

impl GhostBatchNormConfig {
    /// Builds the layer around a fresh [`BatchNorm`].
    ///
    /// # Errors
    /// [`NormError::InvalidConfig`] when `virtual_batch_size` is zero, or for the BatchNorm's
    /// configuration.
    pub fn try_init(&self, device: &Device) -> Result<GhostBatchNorm, NormError> {
        check_nonzero(
            "GhostBatchNorm",
            "virtual_batch_size",
            self.virtual_batch_size,
        )?;
        Ok(GhostBatchNorm {
            norm: self.norm.try_init(device)?,
            virtual_batch_size: self.virtual_batch_size,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> GhostBatchNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl GhostBatchNorm {
    /// Normalizes `input`, see [`GhostBatchNorm`].
    ///
    /// # Errors
    /// The BatchNorm's, for the whole input's shape, or for a ghost batch with a single value
    /// per channel.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        self.try_forward_then(input, None)
    }

    /// `activation(self.forward(input))`, each ghost batch through
    /// [`BatchNorm::try_forward_activated`] (one op on the fused path).
    ///
    /// # Errors
    /// As [`try_forward`](Self::try_forward).
    pub fn try_forward_activated<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Activation,
    ) -> Result<Tensor<D>, NormError> {
        self.try_forward_then(input, Some(activation))
    }

    fn try_forward_then<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Option<Activation>,
    ) -> Result<Tensor<D>, NormError> {
        let normalize = |x: Tensor<D>| self.norm.try_forward_then(x, activation);
        let shape = input.dims();
        self.norm.check_shape(&shape)?;
        let n = shape[0];
        let batch_stats =
            self.norm.training.trains_on(&input.device()) || self.norm.running.is_none();
        let sizes = ghost_batch_sizes(n, self.virtual_batch_size);
        if !batch_stats || sizes.len() == 1 {
            return normalize(input);
        }
        let mut start = 0;
        let mut outputs = Vec::with_capacity(sizes.len());
        for size in sizes {
            outputs.push(normalize(input.clone().narrow(0, start, size))?);
            start += size;
        }
        Ok(Tensor::cat(outputs, 0))
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// `activation(self.forward(input))`, see
    /// [`try_forward_activated`](Self::try_forward_activated).
    ///
    /// # Panics
    /// Where `try_forward_activated` returns an error, with its message.
    pub fn forward_activated<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Activation,
    ) -> Tensor<D> {
        self.try_forward_activated(input, activation)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

/// The ghost batch sizes of a batch of `n`: `max(1, n / virtual)` of them, as even as
/// possible, the larger first.
fn ghost_batch_sizes(n: usize, virtual_batch_size: usize) -> Vec<usize> {
    let k = (n / virtual_batch_size).max(1);
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_batches_are_as_even_as_possible_and_never_below_the_virtual_size() {
        assert_eq!(ghost_batch_sizes(8, 2), [2, 2, 2, 2]);
        assert_eq!(ghost_batch_sizes(7, 3), [4, 3]);
        assert_eq!(ghost_batch_sizes(129, 64), [65, 64]);
        assert_eq!(ghost_batch_sizes(3, 4), [3]);
        assert_eq!(ghost_batch_sizes(0, 4), [0]);
    }
}
