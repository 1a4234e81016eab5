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
//! backward passes must run in step for SyncBatchNorm's reductions. Hence this small loop,
//! the second step engine behind [`train`](crate::train): it keeps the first's contracts
//! (the divergence guard before the optimizer step, a checkpoint of model, optimizer and
//! schedule after every epoch, written atomically, and an exact `--resume`).

use std::path::Path;
use std::time::Instant;

use bn_layers::{ReplicaGroup, publish_running_state};
use bn_models::Classify;
use burn::data::dataloader::DataLoader;
use burn::module::{Module, ModuleDisplay};
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::Interrupter;
use burn::train::checkpoint::Checkpointer;

use crate::artifacts::EngineRun;
use crate::checkpoint::{AtomicCheckpointer, check_checkpoint, last_checkpoint};
use crate::classifier::Classifier;
use crate::config::TrainConfig;
use crate::data::{Batch, BatchInput, Examples, TrainTest};
use crate::divergence::DivergenceGuard;
use crate::evaluate::evaluate;
use crate::loss::{correct_predictions, cross_entropy};
use crate::report::{EpochMetrics, read_metrics_csv, write_metrics_csv};
use crate::train::{TrainError, io, training_loader};

/// Checkpoints kept: the last two epochs, as burn-train keeps them.
const KEEP: usize = 2;

/// Trains `config.devices` replicas of `model` from `start_epoch` (0: afresh) to
/// `config.epochs`, replica 0 evaluated on `data.test` after every epoch; each epoch's
/// metrics are printed unless `quiet`.
pub(crate) fn run<M, S>(
    model: M,
    config: &TrainConfig,
    data: TrainTest<S>,
    device: &Device,
    artifacts: &Path,
    start_epoch: usize,
    quiet: bool,
) -> Result<EngineRun<M>, TrainError>
where
    M: Module + ModuleDisplay + Classify<Input = S::Input> + Send + Sync,
    S: Examples,
{
    let n = config.devices;
    let TrainTest { train, test } = data;
    let test_images = test.len();
    // Whole batches only: a short last batch could leave a replica a single image.
    let usable = train.len() / config.batch_size * config.batch_size;
    if usable == 0 {
        return Err(TrainError::Config(format!(
            "the training set has {} example(s), fewer than one batch of {}",
            train.len(),
            config.batch_size
        )));
    }
    let loader = training_loader(train, usable, config, start_epoch).to_device(device);

    let group = ReplicaGroup::new(n);
    let replica = |model: &M, rank: usize| {
        let sync = config.sync_bn.then(|| group.member(rank));
        model.replica(sync.as_ref()).ok_or_else(|| {
            TrainError::Config(
                "this model has no data-parallel replica form: train it with --devices 1 and \
                 without --sync-bn"
                    .into(),
            )
        })
    };
    let mut replicas = (0..n)
        .map(|rank| replica(&model, rank))
        .collect::<Result<Vec<M>, _>>()?;
    drop(model);

    let steps_per_epoch = usable / config.batch_size;
    let mut schedule = config
        .lr_schedule(steps_per_epoch * config.epochs)
        .map_err(TrainError::Config)?;
    let mut optimizer = config.optimizer();
    let mut epochs = Vec::with_capacity(config.epochs);
    let checkpoints = artifacts.join("checkpoint");
    let checkpointer = |name| AtomicCheckpointer::new(&checkpoints, name).map_err(io(&checkpoints));
    let (model_records, optim_records, schedule_records) = (
        checkpointer("model")?,
        checkpointer("optim")?,
        checkpointer("scheduler")?,
    );
    let metrics_csv = artifacts.join("metrics.csv");
    if start_epoch > 0 {
        // The records `check_checkpoint` has read once already; a failure here is a race.
        let unreadable = |err: burn::train::checkpoint::CheckpointerError| {
            TrainError::Resume(format!("checkpoint of epoch {start_epoch}: {err}"))
        };
        let wrapped = Classifier::new(replicas[0].clone());
        check_checkpoint(&wrapped, artifacts, start_epoch).map_err(TrainError::Resume)?;
        let record: ModuleRecord = model_records.restore(start_epoch).map_err(unreadable)?;
        let restored = wrapped.load_record(record).model;
        replicas = replicas
            .into_iter()
            .map(|replica| replica.load_record(restored.clone().into_record()))
            .collect();
        let record: OptimizerRecord = optim_records.restore(start_epoch).map_err(unreadable)?;
        optimizer = optimizer.load_record(record);
        let record: LrSchedulerRecord =
            schedule_records.restore(start_epoch).map_err(unreadable)?;
        schedule = schedule.load_record(record);
        epochs = read_metrics_csv(&metrics_csv).map_err(io(&metrics_csv))?;
        epochs.truncate(start_epoch);
        if epochs.len() != start_epoch {
            return Err(TrainError::Resume(format!(
                "{} holds {} epoch(s), the checkpoint is at epoch {start_epoch}",
                metrics_csv.display(),
                epochs.len()
            )));
        }
    }

    let guard = DivergenceGuard::new(Interrupter::new(), steps_per_epoch, start_epoch);
    let started = Instant::now();
    for epoch in start_epoch + 1..=config.epochs {
        let (mut loss_sum, mut correct) = (0.0, 0);
        for batch in loader.iter() {
            let batch = batch.map_err(|err| TrainError::Interrupted(err.to_string()))?;
            let step = parallel_step(&replicas, batch);
            guard.observe(step.loss);
            if let Some(at) = guard.divergence() {
                return Err(TrainError::Diverged {
                    at,
                    last_good: last_checkpoint(artifacts),
                    checkpoints,
                });
            }
            loss_sum += step.loss * config.batch_size as f64;
            correct += step.correct;
            // Each replica updated its statistics on a thread of its own.
            for replica in &replicas {
                publish_running_state(replica);
            }
            replicas = optimizer_step(replicas, &mut optimizer, schedule.step(), step.grads);
        }
        let eval_model = replicas[0].valid();
        let evaluation = evaluate(&eval_model, &test, 256, 0, &device.clone().inner());
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / usable as f64,
            train_accuracy: correct as f64 / usable as f64,
            test_loss: evaluation.mean_loss(),
            test_accuracy: evaluation.accuracy(),
        };
        if !quiet {
            println!(
                "epoch {epoch}/{} | train loss {:.4} | train accuracy {:.4} | test loss {:.4} | \
                 test accuracy {:.4} (eval mode)",
                config.epochs,
                metrics.train_loss,
                metrics.train_accuracy,
                metrics.test_loss,
                metrics.test_accuracy
            );
        }
        epochs.push(metrics);
        // The metrics first, then the checkpoint: a checkpoint always has its epoch's row.
        write_metrics_csv(&metrics_csv, &epochs).map_err(io(&metrics_csv))?;
        let record = Classifier::new(replicas[0].clone()).into_record();
        let save = |result: Result<(), burn::train::checkpoint::CheckpointerError>| {
            result.map_err(|err| TrainError::Interrupted(format!("checkpoint {epoch}: {err}")))
        };
        save(model_records.save(epoch, record))?;
        save(optim_records.save(epoch, optimizer.to_record()))?;
        save(schedule_records.save(epoch, schedule.to_record()))?;
        if epoch > KEEP {
            let old = epoch - KEEP;
            save(Checkpointer::<ModuleRecord>::delete(&model_records, old))?;
            save(Checkpointer::<OptimizerRecord>::delete(&optim_records, old))?;
            save(Checkpointer::<LrSchedulerRecord>::delete(
                &schedule_records,
                old,
            ))?;
        }
    }
    Ok(EngineRun {
        model: Classifier::new(replicas[0].valid()),
        epochs,
        step_losses: guard.losses(),
        train_images: usable,
        test_images,
        wall_time_s: started.elapsed().as_secs_f64(),
    })
}

/// One optimizer step on replica 0 with the summed gradients, then its parameters and
/// buffers copied to the other replicas (PyTorch DDP's `broadcast_buffers`).
fn optimizer_step<M: Module>(
    replicas: Vec<M>,
    optimizer: &mut ModuleOptimizer,
    lr: burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
    grads: GradientsParams,
) -> Vec<M> {
    let mut others = replicas.into_iter();
    let first = optimizer.step(lr, others.next().expect("one replica at least"), grads);
    let others: Vec<M> = others
        .map(|replica| replica.load_record(first.clone().into_record()))
        .collect();
    std::iter::once(first).chain(others).collect()
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
fn parallel_step<M>(replicas: &[M], batch: Batch<M::Input>) -> Step
where
    M: Module + Classify<Input: BatchInput> + Send + Sync,
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
                let inputs = batch.inputs.clone().rows(start, len);
                let targets = batch.targets.clone().narrow(0, start, len);
                scope.spawn(move || {
                    let logits = replica.classify(inputs);
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
