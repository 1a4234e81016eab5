//! Training on burn-train's `Learner`: data loaders, optimizer, metrics, checkpoints, resume,
//! and the run's artifacts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bn_models::{ImageClassifier, trainable_params};
use burn::config::Config;
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::data::dataset::transform::PartialDataset;
use burn::module::{Module, ModuleDisplay};
use burn::tensor::Device;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, LearnerSummary, SupervisedTraining};

use std::io::IsTerminal;

use crate::PlainProgress;
use crate::checkpoint::{AtomicCheckpointer, check_checkpoint, last_checkpoint};
use crate::classifier::Classifier;
use crate::config::TrainConfig;
use crate::data::{EpochLoader, ImageBatcher, TrainTest};
use crate::divergence::{Divergence, DivergenceGuard};
use crate::report::{EpochMetrics, Report, write_metrics_csv};

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
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
}

/// Trains `model` on `data.train`, evaluating on `data.test` in evaluation mode after every
/// epoch, and
/// writes the artifacts to `artifacts`: `config.json`, `checkpoint/`, `metrics.csv`,
/// `curves.svg` (with the `plots` feature) and `report.json`.
///
/// With `resume`, training continues from the last checkpoint in `artifacts`; the recipe must
/// be the one saved there (only `epochs` may grow). The batch order depends only on the seed
/// and the epoch, so a resumed run ends with the same parameters as one that never stopped.
/// A NaN or infinite training loss stops the run at that step ([`TrainError::Diverged`]).
///
/// # Errors
/// A [`TrainError`] naming the flag, file or directory at fault.
pub fn train<M>(
    model: M,
    model_name: &str,
    config: &TrainConfig,
    data: TrainTest,
    device: &Device,
    artifacts: &Path,
    resume: bool,
) -> Result<TrainOutcome<M>, TrainError>
where
    M: Module + ModuleDisplay + ImageClassifier + 'static,
{
    config.validate().map_err(TrainError::Config)?;
    let start_epoch = prepare_artifacts(config, artifacts, resume)?;
    let classifier = Classifier::new(model);
    if start_epoch > 0 {
        let renamed =
            check_checkpoint(&classifier, artifacts, start_epoch).map_err(TrainError::Resume)?;
        if renamed > 0 {
            println!(
                "checkpoint/model-{start_epoch}.bpk: written by version 0.1; {renamed} tensors \
                 renamed to today's record paths, the file rewritten"
            );
        }
    }

    let TrainTest { train, test } = config.limit(data);
    let train_images = train.len();
    let test_images = test.len();
    // Batch normalization cannot train on a final batch of one sample: leave that sample out.
    let usable = match train_images % config.batch_size {
        1 if train_images > 1 => train_images - 1,
        _ => train_images,
    };
    if usable < 2 {
        return Err(TrainError::Config(format!(
            "the training set has {train_images} image(s); batch normalization needs at least 2"
        )));
    }
    let train = PartialDataset::new(train, 0, usable);

    let train_loader = EpochLoader::shuffled(
        train,
        ImageBatcher,
        config.batch_size,
        config.num_workers,
        config.seed,
        start_epoch,
    );
    let test_loader =
        EpochLoader::sequential(test, ImageBatcher, config.batch_size, config.num_workers);

    let params = trainable_params(&classifier);
    let batches_per_epoch = usable.div_ceil(config.batch_size);
    let steps = config.epochs * batches_per_epoch.div_ceil(config.grad_accumulation);

    let checkpoints = artifacts.join("checkpoint");
    let checkpointer = |name| AtomicCheckpointer::new(&checkpoints, name).map_err(io(&checkpoints));
    let mut training =
        SupervisedTraining::new(artifacts, Arc::new(train_loader), Arc::new(test_loader))
            .metrics((AccuracyMetric::new(), LossMetric::new()))
            .with_custom_checkpointers(
                checkpointer("model")?,
                checkpointer("optim")?,
                checkpointer("scheduler")?,
            )
            .num_epochs(config.epochs);
    let guard = DivergenceGuard::new(training.interrupter(), batches_per_epoch, start_epoch);
    let classifier = classifier.with_guard(guard.clone());
    let schedule = config.lr_schedule(steps).map_err(TrainError::Config)?;
    let learner = Learner::new(classifier, config.optimizer(), schedule);

    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }
    if config.grad_accumulation > 1 {
        training = training.grads_accumulation(config.grad_accumulation);
    }
    // burn-train draws its TUI on a terminal; elsewhere (CI, logs), or without the `tui`
    // feature, print plain lines.
    if !cfg!(feature = "tui") || !std::io::stdout().is_terminal() {
        training = training.renderer(Box::new(PlainProgress::new()));
    }
    let started = Instant::now();
    let result = training.launch(learner);
    let wall = started.elapsed().as_secs_f64();
    if let Some(at) = guard.divergence() {
        return Err(TrainError::Diverged {
            at,
            last_good: last_checkpoint(artifacts),
            checkpoints,
        });
    }
    if let Some(error) = &result.error {
        return Err(TrainError::Interrupted(error.to_string()));
    }

    let epochs = collect_epochs(artifacts)?;
    write_metrics_csv(&artifacts.join("metrics.csv"), &epochs).map_err(io(artifacts))?;
    #[cfg(feature = "plots")]
    crate::plot::draw_curves(&artifacts.join("curves.svg"), model_name, &epochs)
        .map_err(|err| TrainError::Plot(err.to_string()))?;

    let last = epochs
        .last()
        .ok_or_else(|| TrainError::Logs("no epoch was logged".into()))?;
    // `prepare_artifacts` refuses to resume at or past the last epoch.
    let epochs_run = config.epochs - start_epoch;
    let first_norm = result.model.first_norm_affine();
    let report = Report {
        model: model_name.to_string(),
        norm: config.norm.name().to_string(),
        backend: format!("{device:?}"),
        trainable_params: params,
        epochs: last.epoch,
        epochs_this_run: epochs_run,
        train_images: usable,
        test_images,
        final_train_loss: last.train_loss,
        final_train_accuracy: last.train_accuracy,
        final_test_loss: last.test_loss,
        final_test_accuracy: last.test_accuracy,
        wall_time_s: wall,
        seconds_per_epoch: wall / epochs_run as f64,
        images_per_second: (usable * epochs_run) as f64 / wall,
        first_norm_gamma: first_norm.as_ref().map(|(g, _)| g.clone()),
        first_norm_beta: first_norm.map(|(_, b)| b),
    };
    let report_path = artifacts.join("report.json");
    let json = serde_json::to_string_pretty(&report).expect("a report serializes");
    std::fs::write(&report_path, json).map_err(io(&report_path))?;
    Ok(TrainOutcome {
        model: result.model,
        report,
        epochs,
    })
}

/// Creates the artifact directory, writes `config.json` and returns the epoch to resume from
/// (0 for a fresh run, whose old logs and checkpoints are removed).
fn prepare_artifacts(
    config: &TrainConfig,
    artifacts: &Path,
    resume: bool,
) -> Result<usize, TrainError> {
    std::fs::create_dir_all(artifacts).map_err(io(artifacts))?;
    let config_path = artifacts.join("config.json");
    let start = if resume {
        let saved = TrainConfig::load(&config_path).map_err(|err| {
            TrainError::Resume(format!("no readable {} ({err})", config_path.display()))
        })?;
        let same_recipe = TrainConfig {
            epochs: config.epochs,
            ..saved.clone()
        };
        if same_recipe.to_string() != config.to_string() {
            return Err(TrainError::Resume(format!(
                "the flags differ from the recipe saved in {} (only --epochs may change):\n  \
                 saved: {saved}\n  given: {config}",
                config_path.display()
            )));
        }
        let epoch = last_checkpoint(artifacts).ok_or_else(|| {
            TrainError::Resume(format!(
                "no checkpoint in {}",
                artifacts.join("checkpoint").display()
            ))
        })?;
        if epoch >= config.epochs {
            return Err(TrainError::Resume(format!(
                "the checkpoint is at epoch {epoch} already; pass --epochs above {epoch}"
            )));
        }
        remove_logs_after(artifacts, epoch)?;
        epoch
    } else {
        for stale in ["checkpoint", "train", "valid"] {
            let path = artifacts.join(stale);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        0
    };
    config.save(&config_path).map_err(io(&config_path))?;
    Ok(start)
}

/// Removes burn-train's metric logs of the epochs after `epoch` (written by a run that was
/// stopped before checkpointing them), so the resumed run's logs replace them.
fn remove_logs_after(artifacts: &Path, epoch: usize) -> Result<(), TrainError> {
    for split in ["train", "valid"] {
        let dir = artifacts.join(split);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let logged = name
                .to_str()
                .and_then(|n| n.strip_prefix("epoch-"))
                .and_then(|n| n.parse::<usize>().ok());
            if logged.is_some_and(|logged| logged > epoch) {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
    }
    Ok(())
}

/// Per-epoch means of the loss and accuracy burn-train logged, train and test.
fn collect_epochs(artifacts: &Path) -> Result<Vec<EpochMetrics>, TrainError> {
    let summary =
        LearnerSummary::new(artifacts, &["Loss", "Accuracy"]).map_err(TrainError::Logs)?;
    let series = |split: &[burn::train::MetricSummary], name: &str| -> Vec<(usize, f64)> {
        split
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.entries.iter().map(|e| (e.step, e.value)).collect())
            .unwrap_or_default()
    };
    let train_loss = series(&summary.metrics.train, "Loss");
    let train_acc = series(&summary.metrics.train, "Accuracy");
    let test_loss = series(&summary.metrics.valid, "Loss");
    let test_acc = series(&summary.metrics.valid, "Accuracy");
    let lookup = |values: &[(usize, f64)], epoch: usize| {
        values
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, v)| *v)
            .unwrap_or(f64::NAN)
    };
    Ok(train_loss
        .iter()
        .map(|&(epoch, loss)| EpochMetrics {
            epoch,
            train_loss: loss,
            // burn-train logs accuracy in percent.
            train_accuracy: lookup(&train_acc, epoch) / 100.0,
            test_loss: lookup(&test_loss, epoch),
            test_accuracy: lookup(&test_acc, epoch) / 100.0,
        })
        .collect())
}
