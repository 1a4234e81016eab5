//! Data-parallel training in one process: `N` replicas of a model, each on its own thread and
//! given a slice of every batch, as PyTorch's `DistributedDataParallel` runs one process per
//! device. After each step the replicas' gradients are summed (each replica's loss is scaled by
//! its share of the batch, so the sum is the gradient of the whole batch's mean loss), one
//! optimizer step updates replica 0, and its parameters and buffers are copied to the others
//! (PyTorch DDP's default `broadcast_buffers`).
//!
//! With plain BatchNorm each replica normalizes with its own slice's statistics; with
//! [`SyncBatchNorm`](bn_layers::SyncBatchNorm) (`sync_bn`) every replica uses the statistics of
//! the whole batch, so `N` replicas at batch `B/N` train like one device at batch `B`.
//!
//! burn-train's multi-device strategy cannot host this: it runs a different batch on each
//! device and accumulates, instead of splitting one batch across replicas whose forward and
//! backward passes must run in step for SyncBatchNorm's reductions. Hence this small loop.

use std::time::Instant;

use bn_layers::{Replica, ReplicaGroup};
use bn_models::ImageClassifier;
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleDisplay};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;

use crate::config::TrainConfig;
use crate::data::{EpochLoader, ImageBatch, ImageBatcher, TrainTest};
use crate::evaluate::evaluate;
use crate::loss::{correct_predictions, cross_entropy};
use crate::report::EpochMetrics;
use crate::train::TrainError;

/// How to split the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// Number of replicas (threads), at least 1.
    pub replicas: usize,
    /// Synchronize BatchNorm statistics across the replicas.
    pub sync_bn: bool,
}

/// A finished data-parallel run.
pub struct ParallelOutcome<M> {
    /// Replica 0's model, in evaluation mode.
    pub model: M,
    /// Per-epoch training loss and accuracy, test loss and accuracy (evaluation mode).
    pub epochs: Vec<EpochMetrics>,
    /// The mean loss of every training step's whole batch, in order.
    pub step_losses: Vec<f64>,
    /// Training images per second (evaluation excluded).
    pub images_per_second: f64,
}

/// Trains `model` data-parallel on `data.train`, evaluating replica 0 on `data.test` after
/// every epoch and handing that epoch's metrics to `on_epoch`. `config.batch_size` is the global batch, split as evenly as possible across
/// the replicas. `replicate(model, replica)` must return a copy of `model` with its own
/// parameter storage (same values and parameter ids), synchronized with `replica`'s group when
/// given one.
///
/// # Errors
/// [`TrainError::Config`] for a bad recipe or fewer than 2 images per replica in a batch.
pub fn train_data_parallel<M>(
    model: M,
    replicate: impl Fn(&M, Option<&Replica>) -> M + Sync,
    config: &TrainConfig,
    parallelism: Parallelism,
    data: TrainTest,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochMetrics),
) -> Result<ParallelOutcome<M>, TrainError>
where
    M: Module + ModuleDisplay + ImageClassifier + Send + Sync,
{
    config.validate().map_err(TrainError::Config)?;
    let n = parallelism.replicas;
    if n == 0 || (!parallelism.sync_bn && config.batch_size < 2 * n) {
        return Err(TrainError::Config(format!(
            "--devices {n} with --batch-size {}: every replica needs a slice of at least 2 \
             images for its own batch statistics (or use --sync-bn)",
            config.batch_size
        )));
    }
    if config.batch_size < n {
        return Err(TrainError::Config(format!(
            "--batch-size {} is smaller than --devices {n}: every replica needs an image",
            config.batch_size
        )));
    }
    let TrainTest { train, test } = config.limit(data);
    // Whole batches only: a short last batch could leave a replica a single image.
    let usable = train.len() / config.batch_size * config.batch_size;
    if usable == 0 {
        return Err(TrainError::Config(format!(
            "the training set has {} image(s), fewer than one batch of {}",
            train.len(),
            config.batch_size
        )));
    }
    let train_set = burn::data::dataset::transform::PartialDataset::new(train, 0, usable);
    let loader = EpochLoader::shuffled(
        train_set,
        ImageBatcher,
        config.batch_size,
        config.num_workers,
        config.seed,
        0,
    )
    .to_device(device);

    let group = ReplicaGroup::new(n);
    let sync = |rank: usize| parallelism.sync_bn.then(|| group.member(rank));
    let mut replicas: Vec<M> = (0..n)
        .map(|rank| replicate(&model, sync(rank).as_ref()))
        .collect();
    drop(model);

    let steps_per_epoch = usable / config.batch_size;
    let mut schedule = config
        .lr_schedule(steps_per_epoch * config.epochs)
        .map_err(TrainError::Config)?;
    let mut optimizer = config.optimizer();
    let mut epochs = Vec::with_capacity(config.epochs);
    let mut step_losses = Vec::with_capacity(steps_per_epoch * config.epochs);
    let mut train_seconds = 0.0;
    for epoch in 1..=config.epochs {
        let (mut loss_sum, mut correct) = (0.0, 0);
        let started = Instant::now();
        for batch in loader.iter() {
            let batch = batch.map_err(|err| TrainError::Interrupted(err.to_string()))?;
            let step = parallel_step(&replicas, batch);
            loss_sum += step.loss * config.batch_size as f64;
            correct += step.correct;
            step_losses.push(step.loss);
            // burn's RunningState keeps a statistic updated on another thread pending until
            // a sync, which `valid()` performs: publish this step's running statistics.
            for replica in &replicas {
                let _ = replica.valid();
            }
            let lr = schedule.step();
            let mut others = std::mem::take(&mut replicas).into_iter();
            let first =
                optimizer.step(lr, others.next().expect("one replica at least"), step.grads);
            let others: Vec<M> = others
                .map(|replica| replica.load_record(first.clone().into_record()))
                .collect();
            replicas = std::iter::once(first).chain(others).collect();
            if !step.loss.is_finite() {
                return Err(TrainError::Diverged {
                    at: crate::Divergence {
                        epoch,
                        batch: step_losses.len() - (epoch - 1) * steps_per_epoch,
                        loss: step.loss,
                    },
                    last_good: None,
                    checkpoints: std::path::PathBuf::new(),
                });
            }
        }
        train_seconds += started.elapsed().as_secs_f64();
        let eval_model = replicas[0].valid();
        let evaluation = evaluate(&eval_model, &test, 256, 0, &device.clone().inner());
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / usable as f64,
            train_accuracy: correct as f64 / usable as f64,
            test_loss: evaluation.mean_loss(),
            test_accuracy: evaluation.accuracy(),
        };
        on_epoch(&metrics);
        epochs.push(metrics);
    }
    Ok(ParallelOutcome {
        model: replicas[0].valid(),
        epochs,
        step_losses,
        images_per_second: (usable * config.epochs) as f64 / train_seconds,
    })
}

/// What one data-parallel step produced.
struct Step {
    grads: GradientsParams,
    /// Mean loss over the whole batch.
    loss: f64,
    correct: usize,
}

/// Forward and backward of every replica on its slice of `batch`, in parallel threads; the
/// gradients summed over replicas.
fn parallel_step<M>(replicas: &[M], batch: ImageBatch) -> Step
where
    M: Module + ImageClassifier + Send + Sync,
{
    let total = batch.targets.dims()[0];
    let n = replicas.len();
    let slices: Vec<(usize, usize)> = (0..n)
        .map(|rank| {
            let start = rank * total / n;
            (start, (rank + 1) * total / n - start)
        })
        .collect();
    let results: Vec<(GradientsParams, f64, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = replicas
            .iter()
            .zip(&slices)
            .map(|(replica, &(start, len))| {
                let images = batch.images.clone().narrow(0, start, len);
                let targets = batch.targets.clone().narrow(0, start, len);
                scope.spawn(move || {
                    let logits = replica.classify(images);
                    let loss = cross_entropy(logits.clone(), targets.clone());
                    let correct = correct_predictions(logits, targets);
                    // Scaled by the slice's share: the summed gradients are the batch mean's.
                    let share = len as f64 / total as f64;
                    let loss_value = loss.clone().into_scalar::<f64>();
                    let grads = loss.mul_scalar(share).backward();
                    let grads = GradientsParams::from_grads(grads, replica);
                    (grads, loss_value * share, correct)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a replica thread panicked"))
            .collect()
    });
    let mut accumulator = GradientsAccumulator::new();
    let (mut loss, mut correct) = (0.0, 0);
    for (grads, share_of_loss, right) in results {
        accumulator.accumulate(&replicas[0], grads);
        loss += share_of_loss;
        correct += right;
    }
    Step {
        grads: accumulator.grads(),
        loss,
        correct,
    }
}
