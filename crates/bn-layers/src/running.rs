//! Running statistics, PyTorch's `running_mean`, `running_var` and `num_batches_tracked`, and
//! their update rule: the one place BatchNorm, InstanceNorm and SyncBatchNorm keep them.

use burn::module::{Module, RunningState};
use burn::tensor::{Device, FloatDType, Tensor};

use crate::counter::BatchCounter;
use crate::precision::{in_dtype, statistics_dtype};
use crate::recalibrate::cumulative_average;

/// The running statistics of a layer built with `track_running_stats`, one submodule so
/// that every layer keeps and updates them the same way. In a record they sit under the
/// layer's `running` path (`running.mean`, `running.var`, `running.num_batches_tracked`);
/// PyTorch's state-dict keys are `running_mean`, `running_var`, `num_batches_tracked`.
#[derive(Module, Debug)]
pub struct RunningStats {
    /// Running mean, `[C]`. PyTorch's `running_mean`; starts at 0.
    pub mean: RunningState<Tensor<1>>,
    /// Running **unbiased** variance, `[C]`. PyTorch's `running_var`; starts at 1.
    pub var: RunningState<Tensor<1>>,
    /// How many training forwards updated the statistics. PyTorch's `num_batches_tracked`;
    /// starts at 0 (InstanceNorm keeps it at 0, as PyTorch does).
    pub num_batches_tracked: BatchCounter,
}

impl RunningStats {
    /// PyTorch's initial values for `channels` channels: mean 0, variance 1, count 0, in the
    /// device's default float (f32 where that is f16 or bf16).
    pub fn new(channels: usize, device: &Device) -> Self {
        Self::with_dtype(channels, None, device)
    }

    /// [`RunningStats::new`] with the statistics in `dtype`, or where `None` in the dtype
    /// [`new`](Self::new) picks.
    pub fn with_dtype(channels: usize, dtype: Option<FloatDType>, device: &Device) -> Self {
        let dtype = statistics_dtype(dtype, device);
        let state =
            |value: f64| RunningState::new(Tensor::full([channels], value, (device, dtype)));
        Self {
            mean: state(0.0),
            var: state(1.0),
            num_batches_tracked: BatchCounter::new(0, device),
        }
    }

    /// [`RunningStats::with_dtype`] where `track` is on (`track_running_stats`), else none.
    pub(crate) fn tracked(
        track: bool,
        channels: usize,
        dtype: Option<FloatDType>,
        device: &Device,
    ) -> Option<Self> {
        track.then(|| Self::with_dtype(channels, dtype, device))
    }

    /// The current running mean and (unbiased) variance.
    pub fn current(&self) -> (Tensor<1>, Tensor<1>) {
        (self.mean.value_sync(), self.var.value_sync())
    }

    /// The current `num_batches_tracked`, read back to the host.
    pub fn count(&self) -> i64 {
        self.num_batches_tracked.count()
    }

    /// Counts one training batch without touching the statistics (PyTorch counts an empty
    /// batch too).
    pub(crate) fn count_batch(&self) {
        self.num_batches_tracked.increment();
    }

    /// BatchNorm's update: counts the batch, then moves the statistics towards its mean and
    /// the unbiased version of its biased variance over `count` values, with weight
    /// `momentum`, or with `momentum = None` the cumulative average of every batch so far
    /// (`1 / num_batches_tracked` after the increment).
    pub(crate) fn track_batch(
        &self,
        batch_mean: Tensor<1>,
        batch_var_biased: Tensor<1>,
        count: usize,
        momentum: Option<f64>,
    ) {
        let tracked = self.num_batches_tracked.increment();
        // `recalibrate` makes every update a cumulative average, as `update_bn` sets
        // `momentum = None`.
        let momentum = momentum.filter(|_| !cumulative_average());
        let weight = match momentum {
            Some(m) => Weight::Scalar(m),
            None => Weight::Tensor(Box::new(tracked.float().recip())),
        };
        self.update(batch_mean, batch_var_biased, count, weight);
    }

    /// InstanceNorm's update: moves the statistics towards a batch's mean and unbiased
    /// variance with a fixed `momentum`, without counting the batch (PyTorch never counts
    /// InstanceNorm's batches).
    pub(crate) fn blend_batch(
        &self,
        batch_mean: Tensor<1>,
        batch_var_biased: Tensor<1>,
        count: usize,
        momentum: f64,
    ) {
        self.update(
            batch_mean,
            batch_var_biased,
            count,
            Weight::Scalar(momentum),
        );
    }

    /// The update rule: `running = (1 - f) * running + f * batch`, the batch variance made
    /// unbiased by `count / (count - 1)` (Bessel's correction) as PyTorch does. The blend is
    /// computed in the batch statistics' dtype and stored in the running statistics' own.
    fn update(&self, batch_mean: Tensor<1>, batch_var_biased: Tensor<1>, count: usize, f: Weight) {
        let (device, dtype) = (batch_mean.device(), batch_mean.dtype());
        let bessel = count as f64 / (count as f64 - 1.0);
        let batch_var = batch_var_biased.mul_scalar(bessel);
        let blend = |state: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let running = state.value_sync();
            let stored = running.dtype();
            let running = in_dtype(running.to_device(&device), dtype);
            let blended = match &f {
                Weight::Scalar(m) => running.mul_scalar(1.0 - m) + batch.mul_scalar(*m),
                Weight::Tensor(w) => {
                    let w = in_dtype((**w).clone(), dtype);
                    running * w.clone().neg().add_scalar(1.0) + batch * w
                }
            };
            state.update(in_dtype(blended.detach(), stored));
        };
        blend(&self.mean, batch_mean);
        blend(&self.var, batch_var);
    }
}

/// Makes every running statistic of `model` readable from any thread. Burn's `RunningState`
/// keeps a thread's last update pending until a sync, which [`Module::valid`] performs; a
/// snapshot taken without one (a record, a visitor, another thread) misses the last training
/// step's statistics.
pub fn publish_running_state<M: Module>(model: &M) {
    let _ = model.valid();
}

/// The weight `f` of one update: a number, or a one-element tensor left on the device (the
/// cumulative average's `1 / num_batches_tracked`, without a host round trip).
enum Weight {
    Scalar(f64),
    Tensor(Box<Tensor<1>>),
}
