//! "BatchNorm degrades with small batches; GroupNorm and LayerNorm do not": the same LeNet
//! with BatchNorm, GroupNorm and LayerNorm, trained at batch sizes {2, 4, 8, 32, 128} on the
//! same number of Fashion-MNIST samples (SGD with momentum, the learning rate scaled linearly
//! with the batch size), and with the two BatchNorm variants meant for batches that mislead
//! it: Batch Renormalization and Ghost BatchNorm (`NormKind::Renorm`, `NormKind::Ghost`). Then seed 001's mistake 1: the BatchNorm models evaluated in training
//! mode (as if `model.eval()` were forgotten) against `valid()` mode. And seed 001's gradient
//! accumulation: batch 32 × 4 accumulated against batches of 32 and 128.
//!
//! ```text
//! cargo run --release --example small_batch [-- --samples 60000]
//! ```
//! Writes `small_batch.svg` and `small_batch.json` (and each run's artifacts) to
//! `artifacts/small_batch/`.

use std::path::PathBuf;
use std::process::ExitCode;

use bn_layers::set_training;
use bn_models::{BnLeNet, BnLeNetConfig, Norm, NormKind};
use bn_train::data::{FashionMnist, TrainTest, locate};
use bn_train::{Line, LrSchedule, Panel, TrainConfig, TrainOutcome, evaluate};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::Device;
use burn_batchnorm::cli::{announce_device, exit_code, train_run, write_outputs};
use burn_batchnorm::{BackendKind, cli};
use clap::Parser;
use serde_json::json;

/// BatchNorm, GroupNorm, LayerNorm, Batch Renorm and Ghost BatchNorm across batch sizes at a
/// fixed budget of samples.
#[derive(Parser, Debug)]
struct Args {
    /// Batch sizes to compare.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 4, 8, 32, 128])]
    batch_sizes: Vec<usize>,
    /// Training samples seen by every run (one pass over the first N training images; all
    /// 60,000 by default).
    #[arg(long, default_value_t = 60_000)]
    samples: usize,
    /// Learning rate at batch 128; batch B uses `lr · B / 128`.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Evaluate on the first N test images.
    #[arg(long, default_value_t = 10_000)]
    limit_test: usize,
    /// Seed of the initialization and the shuffling (the same for every run).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, value_parser = cli::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Where the figure, the numbers and each run's artifacts go.
    #[arg(long, default_value = "artifacts/small_batch")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

const NORMS: [NormKind; 5] = [
    NormKind::Batch,
    NormKind::Group,
    NormKind::Layer,
    NormKind::Renorm,
    NormKind::Ghost,
];
/// The batch size at which `--lr` applies.
const BASE_BATCH: usize = 128;

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

struct Outcome {
    norm: NormKind,
    batch: usize,
    accumulation: usize,
    test_accuracy: f64,
    /// BatchNorm only: accuracy with batch statistics of each test batch (training mode).
    train_mode_accuracy: Option<f64>,
    /// BatchNorm only: the first layer's `num_batches_tracked`.
    batches_tracked: Option<i64>,
    seconds: f64,
}

fn run(args: Args) -> Result<(), String> {
    if let Some(bad) = args.batch_sizes.iter().find(|b| **b < 2) {
        return Err(format!(
            "--batch-sizes: BatchNorm needs at least 2 samples per batch, got {bad}"
        ));
    }
    let device = announce_device(args.backend)?.autodiff();
    let dir = locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let data = TrainTest::load(&dir).map_err(|e| e.to_string())?;
    let test = data.test.clone().take(args.limit_test);
    let runner = Runner {
        args: &args,
        data: &data,
        test: &test,
        device: &device,
    };

    let mut outcomes = Vec::new();
    for norm in NORMS {
        for &batch in &args.batch_sizes {
            outcomes.push(runner.run(norm, batch, 1)?);
        }
    }
    // Gradient accumulation: batches of 32, four of them per optimizer step.
    let accumulated = runner.run(NormKind::Batch, 32, 4)?;

    println!(
        "\n{} samples per run, SGD momentum 0.9, lr {} · B / {BASE_BATCH}",
        args.samples, args.lr
    );
    println!("norm   | batch | test acc (valid mode) | test acc (train mode, same batch) | time s");
    for o in &outcomes {
        let train_mode = o
            .train_mode_accuracy
            .map_or("-".to_string(), |a| format!("{a:.4}"));
        println!(
            "{:<6} | {:>5} | {:>21.4} | {:>33} | {:>6.1}",
            o.norm.name(),
            o.batch,
            o.test_accuracy,
            train_mode,
            o.seconds
        );
    }
    println!("\ngradient accumulation (BatchNorm):");
    println!("batch × accumulation | optimizer steps | num_batches_tracked | test acc");
    let bn_at = |b: usize| {
        outcomes
            .iter()
            .find(|o| o.norm == NormKind::Batch && o.batch == b)
    };
    for o in [bn_at(32), Some(&accumulated), bn_at(128)]
        .into_iter()
        .flatten()
    {
        let steps = optimizer_steps(args.samples, o.batch, o.accumulation);
        println!(
            "{:>9} × {:<10} | {:>15} | {:>19} | {:.4}",
            o.batch,
            o.accumulation,
            steps,
            o.batches_tracked.unwrap_or_default(),
            o.test_accuracy
        );
    }

    let line = |label: String, points: Vec<(f64, f64)>| Line::new(label, points);
    let mut accuracy_lines: Vec<Line> = NORMS
        .iter()
        .map(|&norm| {
            let points = outcomes
                .iter()
                .filter(|o| o.norm == norm)
                .map(|o| (o.batch as f64, o.test_accuracy))
                .collect();
            line(label(norm).to_string(), points)
        })
        .collect();
    accuracy_lines.push(line(
        "BatchNorm, evaluated in training mode".into(),
        outcomes
            .iter()
            .filter_map(|o| o.train_mode_accuracy.map(|a| (o.batch as f64, a)))
            .collect(),
    ));
    let panels = [Panel::new("batch size", "test accuracy", accuracy_lines).log_x()];
    let numbers = json!({
        "samples_per_run": args.samples, "lr_at_batch_128": args.lr, "lr_rule": "linear: lr * B / 128",
        "optimizer": "SGD momentum 0.9, constant lr", "seed": args.seed, "test_images": test.len(),
        "runs": outcomes.iter().map(|o| json!({"norm": o.norm.name(), "batch_size": o.batch,
            "test_accuracy_valid_mode": o.test_accuracy, "test_accuracy_train_mode": o.train_mode_accuracy,
            "num_batches_tracked": o.batches_tracked, "wall_time_s": o.seconds})).collect::<Vec<_>>(),
        "grad_accumulation": {"batch_size": 32, "accumulation": 4,
            "optimizer_steps": optimizer_steps(args.samples, 32, 4),
            "test_accuracy": accumulated.test_accuracy, "num_batches_tracked": accumulated.batches_tracked},
    });
    write_outputs(
        &args.artifact_dir,
        "small_batch",
        "Fashion-MNIST LeNet: normalization against batch size (fixed sample budget)",
        &panels,
        &numbers,
    )?;
    Ok(())
}

/// Optimizer steps of one pass over `samples` in mini-batches of `batch` (the last one
/// partial), `accumulation` mini-batches per step.
fn optimizer_steps(samples: usize, batch: usize, accumulation: usize) -> usize {
    samples.div_ceil(batch).div_ceil(accumulation)
}

fn label(norm: NormKind) -> &'static str {
    match norm {
        NormKind::Batch => "BatchNorm",
        NormKind::Group => "GroupNorm",
        NormKind::Layer => "LayerNorm",
        NormKind::Renorm => "Batch Renorm",
        NormKind::Ghost => "Ghost BatchNorm (16)",
        NormKind::BurnBatch => "Burn's BatchNorm",
        NormKind::None => "no normalization",
    }
}

struct Runner<'a> {
    args: &'a Args,
    data: &'a TrainTest,
    test: &'a FashionMnist,
    device: &'a Device,
}

impl Runner<'_> {
    fn run(&self, norm: NormKind, batch: usize, accumulation: usize) -> Result<Outcome, String> {
        let args = self.args;
        let config = TrainConfig::new()
            .with_epochs(1)
            .with_batch_size(batch)
            .with_lr(args.lr * (batch * accumulation) as f64 / BASE_BATCH as f64)
            .with_schedule(LrSchedule::Constant)
            .with_norm(norm)
            .with_seed(args.seed)
            .with_grad_accumulation(accumulation)
            .with_limit_train(Some(args.samples))
            .with_limit_test(Some(args.limit_test));
        self.device.seed(args.seed);
        let model = BnLeNetConfig::new().with_norm(norm).init(self.device);
        let name = format!("{} batch {batch} × {accumulation}", label(norm));
        let artifacts = args
            .artifact_dir
            .join(format!("{norm}_b{batch}_acc{accumulation}"));
        let TrainOutcome { model, report, .. } =
            train_run(model, &name, &config, self.data, self.device, &artifacts)?;
        let model: BnLeNet = model.model;
        let (train_mode_accuracy, batches_tracked) = match model.norm1.as_ref() {
            Some(Norm::Batch(bn)) => (
                Some(self.train_mode_accuracy(model.clone(), batch)),
                bn.num_batches_tracked(),
            ),
            _ => (None, None),
        };
        Ok(Outcome {
            norm,
            batch,
            accumulation,
            test_accuracy: report.final_test_accuracy,
            train_mode_accuracy,
            batches_tracked,
            seconds: report.wall_time_s,
        })
    }

    /// The classic mistake: test batches of the training size through a model left in
    /// training mode, so each batch is normalized with its own statistics.
    fn train_mode_accuracy(&self, model: BnLeNet, batch: usize) -> f64 {
        let device = self.device.clone().inner();
        let model = set_training(model.valid(), true);
        evaluate(&model, self.test, batch, 0, &device).accuracy()
    }
}
