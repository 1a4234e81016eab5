//! The one-device step engine: burn-train's `Learner` (its loaders, metrics, checkpoints and
//! progress display), with a divergence guard inside the training step.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bn_models::Classify;
use burn::module::{Module, ModuleDisplay};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, LearnerSummary, SupervisedTraining};

use crate::PlainProgress;
use crate::artifacts::EngineRun;
use crate::checkpoint::{AtomicCheckpointer, check_checkpoint, last_checkpoint};
use crate::classifier::Classifier;
use crate::config::TrainConfig;
use crate::data::{EpochLoader, Examples, TrainTest};
use crate::divergence::DivergenceGuard;
use crate::report::EpochMetrics;
use crate::train::{TrainError, io, training_loader};

/// Trains `model` from `start_epoch` (0: afresh) to `config.epochs` with burn-train; `quiet`
/// shows no progress.
pub(crate) fn run<M, S>(
    model: M,
    config: &TrainConfig,
    data: TrainTest<S>,
    artifacts: &Path,
    start_epoch: usize,
    quiet: bool,
) -> Result<EngineRun<M>, TrainError>
where
    M: Module + ModuleDisplay + Classify<Input = S::Input> + 'static,
    S: Examples,
{
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

    let TrainTest { train, test } = data;
    let train_images = train.len();
    let test_images = test.len();
    // Batch normalization cannot train on a final batch of one sample: leave that sample out.
    let usable = match train_images % config.batch_size {
        1 if train_images > 1 => train_images - 1,
        _ => train_images,
    };
    if usable < 2 {
        return Err(TrainError::Config(format!(
            "the training set has {train_images} example(s); batch normalization needs at least 2"
        )));
    }
    let train_loader = training_loader(train, usable, config, start_epoch);
    let test_loader = EpochLoader::sequential(
        test,
        S::Batcher::default(),
        config.batch_size,
        config.num_workers,
    );

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
    if quiet {
        training = training.renderer(Box::new(PlainProgress::silent()));
    } else if !cfg!(feature = "tui") || !std::io::stdout().is_terminal() {
        training = training.renderer(Box::new(PlainProgress::new()));
    }
    let started = Instant::now();
    let result = training.launch(learner);
    let wall_time_s = started.elapsed().as_secs_f64();
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
    Ok(EngineRun {
        model: result.model,
        epochs: collect_epochs(artifacts)?,
        step_losses: guard.losses(),
        train_images: usable,
        test_images,
        wall_time_s,
    })
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
