//! The one entry point of training: [`train`] checks the recipe, prepares the run's
//! directory, hands the steps to one of two engines (burn-train's `Learner` on one device,
//! or data-parallel replicas in step) and writes the same artifacts for both.

use std::path::{Path, PathBuf};

use bn_models::{Classify, trainable_params};
use burn::data::dataset::transform::PartialDataset;
use burn::module::{Module, ModuleDisplay};
use burn::tensor::Device;

use crate::classifier::Classifier;
use crate::config::TrainConfig;
use crate::data::{Batch, EpochLoader, Examples, TrainTest};
use crate::divergence::Divergence;
use crate::report::{EpochMetrics, Report};
use crate::{artifacts, learner, parallel};

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad flag or configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Nothing to resume, or a resume with a different recipe.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Reading or writing an artifact failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Drawing `curves.svg` failed (with the `plots` feature).
    #[error("drawing curves.svg: {0}")]
    Plot(String),
    /// Collecting the metrics burn-train logged failed.
    #[error("reading the training logs: {0}")]
    Logs(String),
    /// The loss became NaN or infinite; training stopped at that step.
    #[error(
        "training diverged: the loss is {} at epoch {}, batch {}; stopped there without \
         saving. {}",
        at.loss, at.epoch, at.batch,
        match last_good {
            Some(epoch) => format!(
                "The last good checkpoint (epoch {epoch}) is intact in {}.",
                checkpoints.display()
            ),
            None => "There is no checkpoint from before it.".to_string(),
        }
    )]
    Diverged {
        /// Where the loss first stopped being finite.
        at: Divergence,
        /// The last complete checkpoint, written before the divergence.
        last_good: Option<usize>,
        /// The checkpoint directory.
        checkpoints: PathBuf,
    },
    /// burn-train stopped on an error (a checkpoint that could not be written, a batch that
    /// could not be loaded).
    #[error("training stopped: {0}")]
    Interrupted(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How [`train`] runs, beyond its recipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Continue from the last checkpoint in the artifact directory instead of starting
    /// afresh. Default: false.
    pub resume: bool,
    /// Print no progress: neither burn-train's dashboard or plain lines nor the
    /// data-parallel engine's epoch lines (for experiments that train many small models).
    /// Default: false.
    pub quiet: bool,
}

impl RunOptions {
    /// A resume of the run in the artifact directory, with progress shown.
    pub fn resume() -> Self {
        Self {
            resume: true,
            quiet: false,
        }
    }

    /// A fresh run that prints no progress.
    pub fn quiet() -> Self {
        Self {
            resume: false,
            quiet: true,
        }
    }
}

/// A finished run: the trained model (in evaluation mode) and what was measured.
pub struct TrainOutcome<M: Module + ModuleDisplay> {
    /// The trained classifier, in evaluation mode.
    pub model: Classifier<M>,
    /// The run's summary, also written to `report.json`.
    pub report: Report,
    /// Per-epoch metrics, also written to `metrics.csv`.
    pub epochs: Vec<EpochMetrics>,
    /// The loss of every training step this invocation took, in order (for data-parallel
    /// runs, each the whole global batch's mean).
    pub step_losses: Vec<f64>,
}

/// Trains `model` on `data.train`, evaluating on `data.test` in evaluation mode after every
/// epoch, and writes the artifacts to `artifacts`: `config.json`, `checkpoint/`,
/// `metrics.csv`, `curves.svg` (with the `plots` feature) and `report.json`.
///
/// The steps run on burn-train's `Learner` on `device`, or, when `config.devices > 1` or
/// `config.sync_bn`, on `config.devices` replicas in step, each given a slice of every batch
/// ([`Classify::replica`]; see the `parallel` module). Both engines keep the same
/// contracts:
/// - a checkpoint (model, optimizer, schedule) after every epoch, written atomically;
/// - with `options.resume`, training continues from the last checkpoint in `artifacts`; the recipe
///   must be the one saved there (only `epochs` may grow). The batch order depends only on
///   the seed and the epoch, so a resumed run ends with the same parameters as one that
///   never stopped;
/// - a NaN or infinite training loss stops the run at that step, before the optimizer
///   applies it ([`TrainError::Diverged`]).
///
/// # Errors
/// A [`TrainError`] naming the flag, file or directory at fault.
pub fn train<M, S>(
    model: M,
    model_name: &str,
    config: &TrainConfig,
    data: TrainTest<S>,
    device: &Device,
    artifacts: &Path,
    options: RunOptions,
) -> Result<TrainOutcome<M>, TrainError>
where
    M: Module + ModuleDisplay + Classify<Input = S::Input> + Send + Sync + 'static,
    S: Examples,
{
    config.validate().map_err(TrainError::Config)?;
    let start_epoch = artifacts::prepare(config, artifacts, options.resume)?;
    let params = trainable_params(&model);
    let data = config.limit(data);
    let run = if config.data_parallel() {
        parallel::run(
            model,
            config,
            data,
            device,
            artifacts,
            start_epoch,
            options.quiet,
        )?
    } else {
        learner::run(model, config, data, artifacts, start_epoch, options.quiet)?
    };
    let report = artifacts::finish(
        &run,
        model_name,
        params,
        config,
        start_epoch,
        device,
        artifacts,
    )?;
    Ok(TrainOutcome {
        model: run.model,
        report,
        epochs: run.epochs,
        step_losses: run.step_losses,
    })
}

/// The first `usable` examples of `train` in batches of `config.batch_size`, reshuffled every
/// epoch with `config.seed` from epoch `start_epoch` on (the checkpoint's, on a resume): the
/// training loader of both engines.
pub(crate) fn training_loader<S: Examples>(
    train: S,
    usable: usize,
    config: &TrainConfig,
    start_epoch: usize,
) -> EpochLoader<S::Item, Batch<S::Input>> {
    EpochLoader::shuffled(
        PartialDataset::new(train, 0, usable),
        S::Batcher::default(),
        config.batch_size,
        config.num_workers,
        config.seed,
        start_epoch,
    )
}
