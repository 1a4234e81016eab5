//! Batch normalization whose training statistics span every replica's slice of the batch:
//! PyTorch's `nn.SyncBatchNorm`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::reducer::StatsReducer;
use crate::NormError;
use crate::batch_norm::{BatchNorm, BatchNormConfig};
use crate::error::check_eps_for_batch_stats;
use crate::functional::scale_shift;
use crate::precision::in_f32_if_half;

/// Batch normalization that, in training, normalizes every replica's slice with the mean and
/// variance of the **global** batch: the union of the slices of all replicas in its group.
///
/// Based on [MegDet: A Large Mini-Batch Object Detector](https://arxiv.org/abs/1711.07240)
/// (Peng et al., 2018), PyTorch's `nn.SyncBatchNorm`.
///
/// With `n_r` values per channel on replica `r` and `n = Σ n_r`:
/// `mean = Σ_r Σ x / n`, `var = Σ_r Σ (x - mean)² / n` (biased, two passes for accuracy),
/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`. Each pass sums a per-channel vector
/// across the replicas (a custom autodiff op whose backward sums the gradients across the
/// replicas, as PyTorch's backward reduces `Σ dy` and `Σ dy·x̂`), so every replica holds the
/// same statistics and, after the same update, identical running statistics (mean and
/// **unbiased** variance `var · n / (n - 1)`, `num_batches_tracked`).
/// In evaluation it is exactly [`BatchNorm`].
///
/// Each replica owns its copy of the layer (as each PyTorch process does), runs in its own
/// thread, and all replicas call `forward` and `backward` in step. Only per-channel vectors
/// cross replicas.
///
/// # Shapes
/// - input: `[N, C, ...]`, per replica; `N` may differ between replicas and may be 1.
/// - output: the input's shape.
///
/// # Example
/// ```
/// use bn_layers::{BatchNormConfig, ReplicaGroup, SyncBatchNorm};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let group = ReplicaGroup::new(2);
/// let outputs = std::thread::scope(|scope| {
///     let workers: Vec<_> = group.members().into_iter().map(|replica| {
///         let device = device.clone();
///         scope.spawn(move || {
///             let bn = SyncBatchNorm::new(BatchNormConfig::new_1d(1).init(&device), replica.clone());
///             // Replica 0 holds [1, 2], replica 1 holds [3, 6]: the global mean is 3.
///             let x = if replica.rank() == 0 { [[1.0], [2.0]] } else { [[3.0], [6.0]] };
///             let y = bn.forward(Tensor::<2>::from_data(x, &device));
///             let mean = bn.bn.running_stats().unwrap().0.into_scalar::<f32>();
///             (y.into_data().to_vec::<f32>().unwrap(), mean)
///         })
///     }).collect();
///     workers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<_>>()
/// });
/// // Both replicas moved their running mean to 0.1 · 3 (momentum 0.1).
/// assert!((outputs[0].1 - 0.3).abs() < 1e-6 && (outputs[1].1 - 0.3).abs() < 1e-6);
/// assert!(outputs[0].0[0] < 0.0 && outputs[1].0[1] > 0.0);
/// ```
#[derive(Module, Debug)]
pub struct SyncBatchNorm {
    /// The parameters, buffers and evaluation behaviour: a [`BatchNorm`].
    pub bn: BatchNorm,
    /// How this layer sums statistics across replicas.
    #[module(skip)]
    reducer: StatsReducer,
    /// Tells this layer's reductions apart from the other layers' in the group
    /// ([`Replica::next_site`](super::Replica::next_site)).
    #[module(skip)]
    site: u64,
}

impl SyncBatchNorm {
    /// Synchronizes `bn` through `reducer`: a [`Replica`](super::Replica) of a
    /// [`ReplicaGroup`](super::ReplicaGroup), which hands the layer its reduction site
    /// ([`Replica::next_site`](super::Replica::next_site)), so every replica must build its
    /// synchronized layers in the same order. PyTorch's
    /// `SyncBatchNorm.convert_sync_batchnorm` for one layer.
    pub fn new(bn: BatchNorm, reducer: impl Into<StatsReducer>) -> Self {
        let reducer = reducer.into();
        let site = reducer.next_site();
        Self { bn, reducer, site }
    }

    /// A layer with `config`'s settings on `device`, synchronized through `reducer`.
    pub fn from_config(
        config: &BatchNormConfig,
        device: &Device,
        reducer: impl Into<StatsReducer>,
    ) -> Self {
        Self::new(config.init(device), reducer)
    }

    /// The plain [`BatchNorm`], detached from its group.
    pub fn into_batch_norm(self) -> BatchNorm {
        self.bn
    }

    /// Normalizes `input`, see [`SyncBatchNorm`].
    ///
    /// # Errors
    /// Those of [`BatchNorm::try_forward`], except that [`NormError::TooFewValues`] is about the
    /// global batch: one replica may hold a single value per channel as long as the group
    /// holds more than one. [`NormError::UnsupportedBackend`] when the statistics are summed
    /// across a [`ReplicaGroup`](super::ReplicaGroup) on a backend this build has no
    /// cross-replica sum for (see [`has_kernels`](crate::has_kernels); ndarray has one too).
    /// An error raised before the first reduction fails the group, so the other replicas stop
    /// waiting; [`NormError::ReplicaGroupFailed`] once the group has failed.
    ///
    /// # Panics
    /// In a reduction, when the group fails while this replica takes part in it (a peer
    /// panicked or failed, the replicas are out of step, or one waited past the group's
    /// patience: [`ReplicaGroup::with_patience`](super::ReplicaGroup::with_patience)).
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        in_f32_if_half(input, |x| self.try_forward_f32(x))
    }

    /// [`try_forward`](Self::try_forward) on an input of f32 or f64.
    fn try_forward_f32<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>, NormError> {
        let bn = &self.bn;
        let training = bn.training.trains_on(&input.device());
        if !training {
            // PyTorch synchronizes only in training; in evaluation each replica normalizes
            // alone, with the running statistics or, without them, its own batch.
            return bn.try_forward(input);
        }
        if let Some(reason) = self.reducer.failure() {
            return Err(NormError::ReplicaGroupFailed { reason });
        }
        let checked = self.check(&input);
        if let Err(err) = &checked {
            // This replica will not reach the reduction: its peers must not wait for it.
            self.reducer.fail(&err.to_string());
        }
        let [n, c, s] = checked?;
        let full_shape = input.shape();
        let shape = input.dims().to_vec();
        let reducer = &self.reducer;
        let x = input.reshape([n, c, s]);
        let local_count = (n * s) as f64;

        // Pass 1: per-channel sums and the value count, summed over the group.
        let sums = x.clone().sum_dims(&[0, 2]).reshape([c]);
        let count = sums
            .clone()
            .narrow(0, 0, 1)
            .zeros_like()
            .add_scalar(local_count);
        let global = reducer.sum(Tensor::cat(vec![sums, count], 0), self.site * 2);
        let total = global.clone().narrow(0, c, 1).into_scalar::<f64>().round() as usize;
        if total <= 1 {
            return Err(NormError::TooFewValues {
                layer: "SyncBatchNorm",
                per: "value per channel in the global batch",
                hint: "the replicas' slices together hold one value per channel; use a larger \
                       global batch",
                shape,
            });
        }
        let mean = global.narrow(0, 0, c).div_scalar(total as f64);

        // Pass 2: per-channel sums of squared deviations from the global mean.
        let centered = x - mean.clone().reshape([1, c, 1]);
        let squares = centered.clone().square().sum_dims(&[0, 2]).reshape([c]);
        let var = reducer
            .sum(squares, self.site * 2 + 1)
            .div_scalar(total as f64);

        let x_hat = centered / var.clone().add_scalar(bn.eps).sqrt().reshape([1, c, 1]);
        let gamma = bn.gamma.as_ref().map(|g| g.val());
        let beta = bn.beta.as_ref().map(|b| b.val());
        let output = scale_shift(x_hat, gamma, beta).reshape(full_shape);
        bn.update_running_stats(mean.detach(), var.detach(), total);
        Ok(output)
    }

    /// The input's `[N, C, S]`, or the error this replica raises before its first reduction.
    fn check<const D: usize>(&self, input: &Tensor<D>) -> Result<[usize; 3], NormError> {
        let dims = self.bn.check_shape(&input.dims())?;
        check_eps_for_batch_stats("SyncBatchNorm", self.bn.eps)?;
        let device = input.device();
        if self.reducer.is_in_process() && !crate::kernels::covers(&device) {
            return Err(NormError::UnsupportedBackend {
                layer: "SyncBatchNorm",
                op: "the in-process cross-replica sum",
                device: format!("{device:?}"),
            });
        }
        Ok(dims)
    }

    /// Normalizes `input`, see [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// Where `try_forward` returns an error, with its message.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}
