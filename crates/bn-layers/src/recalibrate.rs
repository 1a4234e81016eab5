//! Re-estimating BatchNorm's running statistics from data after training: PyTorch's
//! `torch.optim.swa_utils.update_bn`, fvcore's "precise BN".

use std::cell::Cell;

use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Int, Tensor};

use crate::module_path::ModulePath;
use crate::running::publish_running_state;
use crate::training::set_training;

thread_local! {
    /// On while [`recalibrate`] runs its forwards on this thread.
    static CUMULATIVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether BatchNorm updates on this thread are cumulative averages right now, whatever each
/// layer's `momentum` (PyTorch's `update_bn` sets `momentum = None` while it runs).
pub(crate) fn cumulative_average() -> bool {
    CUMULATIVE.with(Cell::get)
}

/// Re-estimates the running statistics of every [`BatchNorm`](crate::BatchNorm) in `model`
/// (those inside [`BatchNormAct`](crate::BatchNormAct) and
/// [`SyncBatchNorm`](crate::SyncBatchNorm) too) from `batches`, as PyTorch's
/// `torch.optim.swa_utils.update_bn(loader, model)` does:
///
/// 1. every BatchNorm's running mean, running variance and `num_batches_tracked` are reset
///    to 0, 1 and 0;
/// 2. `forward(&model, batch)` runs once per batch, in training mode, with every BatchNorm
///    update a cumulative average (`momentum = None`), so each running mean ends as the mean
///    of the batch means and each running variance as the mean of the unbiased batch
///    variances, each batch weighted equally; `num_batches_tracked` ends at the number of
///    batches;
/// 3. the training flags are restored, and the layers' own momenta apply again.
///
/// A model without a BatchNorm is returned as it is, without a forward (`update_bn` returns
/// early then too).
///
/// `forward` runs the model on one batch; its output is not needed. On a plain
/// (non-autodiff) device the forwards record no gradients, as `update_bn` runs under
/// `torch.no_grad()`. Other layers with running statistics (InstanceNorm with
/// `track_running_stats`, burn-nn's `BatchNorm`) are not reset; as under `update_bn`'s
/// `model.train()`, their statistics move with their own momentum during the forwards.
///
/// The forwards must run on the calling thread: the cumulative rule is set for this thread
/// only. Models trained with batch statistics that drifted (a momentum that lags the last
/// epochs, SWA-averaged weights, a model fine-tuned without BatchNorm updates) gain most.
///
/// # Example
/// ```
/// use bn_layers::{BatchNorm, BatchNormConfig, recalibrate};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let bn = BatchNormConfig::new_1d(1).init(&device);
/// let batches = [[[1.0], [3.0]], [[5.0], [7.0]]];
/// let bn = recalibrate(bn, batches, |bn: &BatchNorm, batch| {
///     bn.forward(Tensor::<2>::from_data(batch, &device));
/// });
/// let (mean, var) = bn.running_stats().unwrap();
/// assert_eq!(mean.into_scalar::<f32>(), 4.0); // (2 + 6) / 2
/// assert_eq!(var.into_scalar::<f32>(), 2.0); // the unbiased variances 2 and 2
/// assert_eq!(bn.num_batches_tracked(), Some(2));
/// ```
pub fn recalibrate<M: Module, B>(
    model: M,
    batches: impl IntoIterator<Item = B>,
    mut forward: impl FnMut(&M, B),
) -> M {
    let mut flags = Flags::default();
    model.visit(&mut flags);
    // A pending update would overwrite the reset below.
    publish_running_state(&model);
    let mut reset = ResetBatchNormStats::default();
    let model = model.map(&mut reset);
    if reset.batch_norms == 0 {
        // `update_bn` returns before any forward when the model has no BatchNorm.
        return model;
    }
    let model = set_training(model, true);
    {
        let _cumulative = CumulativeAverage::start();
        for batch in batches {
            forward(&model, batch);
        }
    }
    publish_running_state(&model);
    model.map(&mut flags.restore())
}

/// Sets [`CUMULATIVE`] while alive, and clears it when dropped (a panicking `forward` too).
struct CumulativeAverage {
    before: bool,
}

impl CumulativeAverage {
    fn start() -> Self {
        Self {
            before: CUMULATIVE.with(|on| on.replace(true)),
        }
    }
}

impl Drop for CumulativeAverage {
    fn drop(&mut self) {
        CUMULATIVE.with(|on| on.set(self.before));
    }
}

/// The training flags of a model, in visiting order.
#[derive(Default)]
struct Flags {
    values: Vec<bool>,
    next: usize,
}

impl Flags {
    fn restore(self) -> Self {
        Self { next: 0, ..self }
    }
}

impl ModuleVisitor for Flags {
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        self.values.push(flag.is_enabled());
    }
}

impl ModuleMapper for Flags {
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        let value = self.values[self.next];
        self.next += 1;
        flag.with_value(value)
    }
}

/// Resets the running statistics of BatchNorm layers to PyTorch's initial values
/// (`reset_running_stats`: mean 0, variance 1, `num_batches_tracked` 0).
#[derive(Default)]
struct ResetBatchNormStats {
    path: ModulePath,
    /// How many BatchNorms the model has (each has one `training` field).
    batch_norms: usize,
}

impl ResetBatchNormStats {
    /// The field being mapped, if it is a BatchNorm's running statistic.
    fn batch_norm_statistic(&self) -> Option<&str> {
        self.path.field_of_submodule("BatchNorm", "running")
    }
}

impl ModuleMapper for ResetBatchNormStats {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
        if self.path.field_of("BatchNorm") == Some("training") {
            self.batch_norms += 1;
        }
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let value = match self.batch_norm_statistic() {
            Some("mean") => 0.0,
            Some("var") => 1.0,
            _ => return param,
        };
        param.map(|tensor| tensor.zeros_like().add_scalar(value))
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        match self.batch_norm_statistic() {
            Some("num_batches_tracked") => param.map(|count| count.zeros_like()),
            _ => param,
        }
    }
}

#[cfg(test)]
mod tests;
