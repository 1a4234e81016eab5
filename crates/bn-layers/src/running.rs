//! PyTorch's update rule for running statistics.

use burn::module::RunningState;
use burn::tensor::{Device, Tensor};

use crate::counter::BatchCounter;

/// The buffers of a layer that tracks running statistics, PyTorch's initial values:
/// `running_mean = 0`, `running_var = 1`, `num_batches_tracked = 0`.
pub(crate) type RunningBuffers = (
    Option<RunningState<Tensor<1>>>,
    Option<RunningState<Tensor<1>>>,
    Option<BatchCounter>,
);

/// [`RunningBuffers`] for `channels` channels, or none at all when `track` is off.
pub(crate) fn running_buffers(track: bool, channels: usize, device: &Device) -> RunningBuffers {
    if !track {
        return (None, None, None);
    }
    let state = |value: f64| RunningState::new(Tensor::full([channels], value, device));
    (
        Some(state(0.0)),
        Some(state(1.0)),
        Some(BatchCounter::new(0, device)),
    )
}

/// The current running mean and variance, if both exist.
pub(crate) fn current(
    mean: &Option<RunningState<Tensor<1>>>,
    var: &Option<RunningState<Tensor<1>>>,
) -> Option<(Tensor<1>, Tensor<1>)> {
    match (mean, var) {
        (Some(mean), Some(var)) => Some((mean.value_sync(), var.value_sync())),
        _ => None,
    }
}

/// The weight `f` a new batch statistic gets in `running = (1 - f) * running + f * batch`.
pub(crate) enum UpdateFactor {
    /// A fixed momentum: an exponential moving average.
    Momentum(f64),
    /// `1 / num_batches_tracked` (after its increment): the cumulative average of every batch
    /// seen so far. PyTorch's `momentum=None`.
    Cumulative(Box<Tensor<1>>),
}

/// Moves the running mean and variance towards a batch's mean and **unbiased** variance.
///
/// `count` is the number of values each statistic was computed from: the biased variance
/// is rescaled by `count / (count - 1)` as PyTorch does (Bessel's correction).
pub(crate) fn update_running_stats(
    running_mean: &RunningState<Tensor<1>>,
    running_var: &RunningState<Tensor<1>>,
    batch_mean: Tensor<1>,
    batch_var_biased: Tensor<1>,
    count: usize,
    factor: &UpdateFactor,
) {
    let device = batch_mean.device();
    let bessel = count as f64 / (count as f64 - 1.0);
    let batch_var = batch_var_biased.mul_scalar(bessel);

    let mean = blend(
        running_mean.value_sync().to_device(&device),
        batch_mean,
        factor,
    );
    let var = blend(
        running_var.value_sync().to_device(&device),
        batch_var,
        factor,
    );
    running_mean.update(mean.detach());
    running_var.update(var.detach());
}

fn blend(running: Tensor<1>, batch: Tensor<1>, factor: &UpdateFactor) -> Tensor<1> {
    match factor {
        UpdateFactor::Momentum(m) => running.mul_scalar(1.0 - m) + batch.mul_scalar(*m),
        UpdateFactor::Cumulative(f) => {
            running * f.clone().neg().add_scalar(1.0) + batch * (**f).clone()
        }
    }
}
