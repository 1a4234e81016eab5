//! Batch normalization followed by an activation, as one op: timm's `BatchNormAct2d`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::{Activation, BatchNorm, BatchNormConfig, NormError};

/// Configuration of a [`BatchNormAct`] layer.
#[derive(Config, Debug)]
pub struct BatchNormActConfig {
    /// The batch normalization, PyTorch's `nn.BatchNorm*d` options.
    pub norm: BatchNormConfig,
    /// The activation after it. Default: [`Activation::Relu`] (timm's default).
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
}

/// [`BatchNorm`] followed by an elementwise [`Activation`], computed as one op: PyTorch's
/// `nn.Sequential(nn.BatchNorm2d(C), nn.Sigmoid())` (or `nn.ReLU()`), timm's
/// `BatchNormAct2d`.
///
/// `y = f((x - E[x]) / sqrt(Var[x] + eps) * gamma + beta)`
///
/// Batch normalization is from [Batch Normalization: Accelerating Deep Network Training by
/// Reducing Internal Covariate Shift](https://arxiv.org/abs/1502.03167) (Ioffe & Szegedy,
/// 2015); every rule of [`BatchNorm`] (statistics, running statistics, training mode,
/// errors) holds unchanged. On the fused path the activation is applied inside the
/// normalization's kernel and its derivative is taken from the saved output
/// (`y(1 - y)` for the sigmoid, `y > 0` for ReLU) inside the normalization's backward: one
/// autodiff node, and no pass over memory for the activation in either direction. The
/// composed path applies [`Activation::apply`] after [`BatchNorm`].
///
/// The parameters and buffers are the inner [`BatchNorm`]'s (`norm`), so a PyTorch
/// `BatchNorm2d`'s state dict loads into `norm` as it is.
///
/// # Shapes
/// - input: `[N, C, ...]`, restricted by the config's `input_rank`.
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::{Activation, BatchNormActConfig, BatchNormConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let layer = BatchNormActConfig::new(BatchNormConfig::new_2d(3))
///     .with_activation(Activation::Sigmoid)
///     .init(&device);
/// let y = layer.forward(Tensor::<4>::ones([2, 3, 4, 4], &device));
/// // A constant batch normalizes to 0 (beta), and sigmoid(0) = 0.5.
/// assert_eq!(y.mean().into_scalar::<f32>(), 0.5);
/// ```
#[derive(Module, Debug)]
pub struct BatchNormAct {
    /// The batch normalization, with every parameter and buffer.
    pub norm: BatchNorm,
    /// The activation applied to its output.
    #[module(skip)]
    pub activation: Activation,
}

impl BatchNormActConfig {
    /// Builds the layer, see [`BatchNormConfig::try_init`].
    ///
    /// # Errors
    /// As [`BatchNormConfig::try_init`].
    pub fn try_init(&self, device: &Device) -> Result<BatchNormAct, NormError> {
        Ok(BatchNormAct {
            norm: self.norm.try_init(device)?,
            activation: self.activation,
        })
    }

    /// Builds the layer, see [`try_init`](Self::try_init).
    ///
    /// # Panics
    /// On an invalid configuration, with the message of [`NormError`].
    pub fn init(&self, device: &Device) -> BatchNormAct {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl BatchNormAct {
    /// Normalizes `input` and applies the activation, see [`BatchNormAct`].
    ///
    /// # Shapes
    /// - input: `[N, C, ...]`
    /// - output: `[N, C, ...]`
    ///
    /// # Errors
    /// As [`BatchNorm::try_forward`].
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        self.norm.try_forward_activated(input, self.activation)
    }

    /// Normalizes `input` and applies the activation, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

#[cfg(test)]
mod tests {
    //! Expected values by hand: a batch of two values per channel normalizes to ±1 (up to
    //! eps = 1e-5, which moves them by 5e-6), whose sigmoid is `1 / (1 + e^∓1)`.

    use super::*;
    use crate::ComputePath;
    use crate::test_util::{assert_close, tensor, train_device};

    fn layer(activation: Activation, path: ComputePath) -> BatchNormAct {
        let norm = BatchNormConfig::new_1d(2).with_path(path);
        BatchNormActConfig::new(norm)
            .with_activation(activation)
            .try_init(&train_device())
            .unwrap()
    }

    #[test]
    fn sigmoid_and_relu_follow_the_normalization_on_both_paths() {
        // Channel 0 holds {1, 3}, channel 1 {-2, 6}: both normalize to {-1, 1}.
        let x = [1.0, -2.0, 3.0, 6.0];
        // 1 / (1 + e) and 1 / (1 + e^-1).
        let (low, high) = (0.2689414213699951, 0.7310585786300049);
        for path in [ComputePath::Fused, ComputePath::Composed] {
            let bn = layer(Activation::Sigmoid, path);
            let y = bn.forward(tensor(x, [2, 2], &train_device()));
            assert_close(y, &[low, low, high, high], 1e-5);
            let bn = layer(Activation::Relu, path);
            let y = bn.forward(tensor(x, [2, 2], &train_device()));
            assert_close(y, &[0.0, 0.0, 1.0, 1.0], 1e-5);
            assert_eq!(bn.norm.num_batches_tracked(), Some(1));
        }
    }

    #[test]
    fn errors_are_batch_norms() {
        let bn = layer(Activation::Relu, ComputePath::Fused);
        let err = bn
            .try_forward(tensor(
                [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                [2, 3],
                &train_device(),
            ))
            .unwrap_err();
        assert_eq!(err.kind(), "ChannelMismatch");
    }
}
