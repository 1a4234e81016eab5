//! A common claim, measured: with data parallelism each replica sees a small slice of the
//! batch, plain BatchNorm normalizes with those noisy per-slice statistics, and SyncBatchNorm
//! fixes it by normalizing with the statistics of the whole batch.
//!
//! Part 1: 4 replicas with 4 images each, plain BN against SyncBN against one device with
//! batch 16, on the same data, initialization and batch order. Part 2: 2 replicas × 64 with
//! SyncBN against one device × 128 (the main job's batch), and the throughput of each.
//!
//! ```text
//! cargo run --release --example sync_batchnorm [-- --limit-train 12000]
//! ```
//! Writes `sync_batchnorm.svg` and `sync_batchnorm.json` to `artifacts/sync_batchnorm/`, and
//! each run's own artifacts (`bn_train::train`'s) to a folder beside them.

use std::path::PathBuf;
use std::process::ExitCode;

use bn_models::{BnLeNet, BnLeNetConfig};
use bn_train::data::{TrainTest, locate};
use bn_train::{Line, LrSchedule, Panel, RunOptions, TrainConfig, TrainOutcome};
use burn_batchnorm::cli::{announce_device, exit_code, write_outputs};
use burn_batchnorm::{BackendKind, cli};
use clap::Parser;
use serde_json::json;

/// Plain BatchNorm, SyncBatchNorm and one device, on the same batches.
#[derive(Parser, Debug)]
struct Args {
    /// Training images (one epoch over the first N, rounded down to whole batches of 128).
    #[arg(long, default_value_t = 60_000)]
    limit_train: usize,
    /// Test images.
    #[arg(long, default_value_t = 10_000)]
    limit_test: usize,
    /// Learning rate of SGD with momentum 0.9 at batch 16 (part 1); part 2 at batch 128 uses 8×.
    #[arg(long, default_value_t = 0.0125, value_parser = cli::learning_rate)]
    lr: f64,
    /// Seed of the initialization and the shuffling (the same for every run).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, value_parser = cli::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Where the figure and the numbers go.
    #[arg(long, default_value = "artifacts/sync_batchnorm")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

struct Run {
    name: String,
    outcome: TrainOutcome<BnLeNet>,
    seconds: f64,
}

fn run(args: Args) -> Result<(), String> {
    let device = announce_device(args.backend)?;
    let dir = locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let data = TrainTest::load(&dir).map_err(|e| e.to_string())?;
    let device = device.autodiff();

    // Whole batches of 128 for every run: the data-parallel engine drops a short last batch,
    // and the shuffle depends on how many images there are, so every run must train on the
    // same number for their batches to be the same.
    let limit_train = args.limit_train / 128 * 128;
    if limit_train == 0 {
        return Err(format!(
            "--limit-train {} is less than one batch of 128 (part 2's batch)",
            args.limit_train
        ));
    }
    let train = |name: &str, batch: usize, lr: f64, replicas: usize, sync_bn: bool| {
        println!("\n== {name}");
        let config = TrainConfig::new()
            .with_epochs(1)
            .with_batch_size(batch)
            .with_lr(lr)
            .with_schedule(LrSchedule::Constant)
            .with_seed(args.seed)
            .with_limit_train(Some(limit_train))
            .with_limit_test(Some(args.limit_test))
            .with_devices(replicas)
            .with_sync_bn(sync_bn);
        device.seed(args.seed);
        let model = BnLeNetConfig::new().init(&device);
        let run_dir = args.artifact_dir.join(format!(
            "{replicas}x{}{}",
            batch / replicas,
            if sync_bn { "-sync" } else { "" }
        ));
        let started = std::time::Instant::now();
        let outcome = bn_train::train(
            model,
            name,
            &config,
            data.clone(),
            &device,
            &run_dir,
            RunOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let last = outcome.epochs.last().expect("one epoch");
        println!(
            "test accuracy {:.4}, train loss {:.4}, {:.0} images/s, {seconds:.1} s",
            last.test_accuracy, last.train_loss, outcome.report.images_per_second
        );
        Ok::<_, String>(Run {
            name: name.to_string(),
            outcome,
            seconds,
        })
    };

    let part1 = [
        train("4 replicas × 4, plain BN", 16, args.lr, 4, false)?,
        train("4 replicas × 4, SyncBN", 16, args.lr, 4, true)?,
        train("1 device × 16", 16, args.lr, 1, false)?,
    ];
    let part2 = [
        train("2 replicas × 64, SyncBN", 128, args.lr * 8.0, 2, true)?,
        train("1 device × 128", 128, args.lr * 8.0, 1, false)?,
    ];

    let max_diff = |a: &Run, b: &Run| {
        a.outcome
            .step_losses
            .iter()
            .zip(&b.outcome.step_losses)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    let accuracy = |r: &Run| r.outcome.epochs[0].test_accuracy;
    println!("\n| run | test accuracy | images/s | seconds |\n|---|---|---|---|");
    for r in part1.iter().chain(&part2) {
        println!(
            "| {} | {:.4} | {:.0} | {:.1} |",
            r.name,
            accuracy(r),
            r.outcome.report.images_per_second,
            r.seconds
        );
    }
    let sync_vs_single = max_diff(&part1[1], &part1[2]);
    let plain_vs_single = max_diff(&part1[0], &part1[2]);
    let pair_vs_single = max_diff(&part2[0], &part2[1]);
    println!(
        "\nmax per-step |loss difference| against one device: SyncBN 4×4 {sync_vs_single:.2e}, \
         plain BN 4×4 {plain_vs_single:.2e}; SyncBN 2×64 against 1×128 {pair_vs_single:.2e}"
    );
    println!(
        "throughput, batch 128: 2 replicas {:.0} images/s, 1 device {:.0} images/s ({:.2}×)",
        part2[0].outcome.report.images_per_second,
        part2[1].outcome.report.images_per_second,
        part2[0].outcome.report.images_per_second / part2[1].outcome.report.images_per_second
    );

    let curve = |r: &Run| Line::new(r.name.clone(), smoothed(&r.outcome.step_losses));
    let panels = [
        Panel::new(
            "step (batch 16: 4 replicas × 4 or one device)",
            "training loss (mean of the last 50 steps)",
            part1.iter().map(curve).collect(),
        ),
        Panel::new(
            "step (batch 128: 2 replicas × 64 or one device)",
            "training loss (mean of the last 50 steps)",
            part2.iter().map(curve).collect(),
        ),
    ];
    let runs: Vec<_> = part1
        .iter()
        .chain(&part2)
        .map(|r| {
            json!({
                "run": r.name,
                "test_accuracy": accuracy(r),
                "train_loss": r.outcome.report.final_train_loss,
                "images_per_second": r.outcome.report.images_per_second,
                "seconds": r.seconds,
                "step_losses": r.outcome.step_losses,
            })
        })
        .collect();
    let numbers = json!({
        "backend": format!("{device:?}"),
        "train_images": limit_train,
        "runs": runs,
        "max_step_loss_diff": {
            "sync_4x4_vs_single_16": sync_vs_single,
            "plain_4x4_vs_single_16": plain_vs_single,
            "sync_2x64_vs_single_128": pair_vs_single,
        },
    });
    write_outputs(
        &args.artifact_dir,
        "sync_batchnorm",
        "SyncBatchNorm: replicas with the statistics of the whole batch",
        &panels,
        &numbers,
    )
}

/// `(step, mean of the last 50 losses)` at every step.
fn smoothed(losses: &[f64]) -> Vec<(f64, f64)> {
    (0..losses.len())
        .map(|i| {
            let window = &losses[i.saturating_sub(49)..=i];
            (
                (i + 1) as f64,
                window.iter().sum::<f64>() / window.len() as f64,
            )
        })
        .collect()
}
