//! BatchNorm at a small learning rate: scikit-learn's two moons (1,000 points, noise 0.1),
//! a 2-64-2 MLP with and without BatchNorm, plain SGD, batch 32, 10 epochs, at a learning
//! rate of 1e-4 and at 0.1. Prints the per-epoch losses next to PyTorch's
//! (`docs/pytorch/moons.out`) and plots both curves per learning rate.
//!
//! ```text
//! cargo run --release --example mlp_moons [-- --seed 42]
//! ```
//! Every run trains on `bn_train::train`, the main job's pipeline, and evaluates all points
//! in evaluation mode after each epoch. Writes `moons.svg` and `moons.json` to
//! `artifacts/mlp_moons/` (or `--artifact-dir`), and each run's artifacts (`config.json`,
//! checkpoints, `metrics.csv`, `report.json`) under its `runs/` folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bn_models::{MoonsMlpConfig, NormKind};
use bn_train::data::{Moons, TrainTest, make_moons};
use bn_train::{Line, LrSchedule, Panel, RunOptions, TrainConfig, train};
use burn::tensor::Device;
use burn_batchnorm::cli::{announce_device, exit_code, write_outputs};
use burn_batchnorm::{BackendKind, cli};
use clap::Parser;
use serde_json::json;

/// Two moons, MLP with and without BatchNorm, two learning rates.
#[derive(Parser, Debug)]
struct Args {
    /// Seed of the data (as `random_state`), the initialization and the shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u32,
    /// Epochs per run.
    #[arg(long, default_value_t = 10, value_parser = cli::at_least_one)]
    epochs: usize,
    /// Further initialization seeds (seed+1, ...) to check the lr=1e-4 result is not luck.
    #[arg(long, default_value_t = 20)]
    repeats: u32,
    /// Where to write moons.svg and moons.json.
    #[arg(long, default_value = "artifacts/mlp_moons")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

const POINTS: usize = 1000;
const NOISE: f64 = 0.1;
const BATCH: usize = 32;
const LEARNING_RATES: [f64; 2] = [1e-4, 0.1];

/// PyTorch 2.15's epoch losses for the same recipe, from `docs/pytorch/moons.out`
/// (lr, BN, the 10 losses).
const PYTORCH: [(f64, bool, [f64; 10]); 4] = [
    (
        1e-4,
        false,
        [
            0.7067, 0.7041, 0.7007, 0.6980, 0.6952, 0.6927, 0.6895, 0.6873, 0.6837, 0.6818,
        ],
    ),
    (
        1e-4,
        true,
        [
            0.6919, 0.6802, 0.6715, 0.6638, 0.6566, 0.6471, 0.6380, 0.6295, 0.6240, 0.6165,
        ],
    ),
    (
        0.1,
        false,
        [
            0.3919, 0.2895, 0.2581, 0.2496, 0.2333, 0.2307, 0.2135, 0.2076, 0.1938, 0.1818,
        ],
    ),
    (
        0.1,
        true,
        [
            0.3058, 0.2665, 0.2637, 0.2599, 0.2587, 0.2418, 0.2415, 0.2475, 0.2176, 0.2155,
        ],
    ),
];

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

/// One training run's record.
struct Run {
    lr: f64,
    bn: bool,
    losses: Vec<f64>,
    accuracy: f64,
}

fn run(args: Args) -> Result<(), String> {
    let device = announce_device(args.backend)?.autodiff();
    let seed = args.seed;
    let moons = make_moons(POINTS, NOISE, seed);
    println!(
        "make_moons({POINTS}, noise={NOISE}, random_state={seed}); first point {:?}",
        moons.points[0]
    );

    let mut runs = Vec::new();
    for lr in LEARNING_RATES {
        for bn in [false, true] {
            let (losses, accuracy) = train_moons(bn, &moons, lr, seed, &args, &device)?;
            runs.push(Run {
                lr,
                bn,
                losses,
                accuracy,
            });
        }
    }

    println!("\nepoch losses (mean of the batch losses), ours and PyTorch's (moons.out):");
    for run in &runs {
        let label = format!("lr={:<6} BN={:<5}", run.lr, run.bn);
        let ours: Vec<String> = run.losses.iter().map(|l| format!("{l:.4}")).collect();
        println!(
            "{label} ours    acc(eval)={:.3}  {}",
            run.accuracy,
            ours.join(" ")
        );
        if let Some((_, _, theirs)) = PYTORCH
            .iter()
            .find(|(lr, bn, _)| *lr == run.lr && *bn == run.bn)
        {
            let theirs: Vec<String> = theirs.iter().map(|l| format!("{l:.4}")).collect();
            println!("{label} PyTorch                {}", theirs.join(" "));
        }
    }
    for lr in LEARNING_RATES {
        let drop = |bn: bool| {
            let run = runs
                .iter()
                .find(|r| r.lr == lr && r.bn == bn)
                .expect("every run");
            run.losses[0] - run.losses[run.losses.len() - 1]
        };
        println!(
            "lr={lr}: loss fell by {:.4} without BN and {:.4} with BN over {} epochs",
            drop(false),
            drop(true),
            args.epochs
        );
    }

    let robustness = repeat_small_lr(&moons, &args, &device)?;
    println!(
        "lr=1e-4 over {} more seeds: BN lowered the loss more in {}/{} runs (mean drop {:.4} with BN, {:.4} without)",
        args.repeats,
        robustness.bn_wins,
        args.repeats,
        robustness.mean_drop_bn,
        robustness.mean_drop_plain
    );

    let panels: Vec<Panel> = LEARNING_RATES
        .iter()
        .map(|&lr| {
            let mut lines = Vec::new();
            for run in runs.iter().filter(|r| r.lr == lr) {
                let name = if run.bn { "with BN" } else { "without BN" };
                lines.push(Line::new(format!("{name} (ours)"), epochs(&run.losses)));
                if let Some((_, _, theirs)) =
                    PYTORCH.iter().find(|(l, b, _)| *l == lr && *b == run.bn)
                {
                    lines.push(Line::new(format!("{name} (PyTorch)"), epochs(theirs)));
                }
            }
            Panel::new("epoch", format!("training loss, lr = {lr}"), lines)
        })
        .collect();
    let numbers = json!({
        "seed": args.seed, "points": POINTS, "noise": NOISE, "batch_size": BATCH, "epochs": args.epochs,
        "runs": runs.iter().map(|r| json!({"lr": r.lr, "bn": r.bn, "epoch_loss_mean_of_batches": r.losses,
                                            "final_train_acc_eval_mode": r.accuracy})).collect::<Vec<_>>(),
        "lr_1e-4_repeats": {"seeds": args.repeats, "bn_lowered_loss_more": robustness.bn_wins,
                            "mean_loss_drop_bn": robustness.mean_drop_bn,
                            "mean_loss_drop_without_bn": robustness.mean_drop_plain},
    });
    write_outputs(
        &args.artifact_dir,
        "moons",
        "Two moons: MLP 2-64-2 with and without BatchNorm (SGD, batch 32)",
        &panels,
        &numbers,
    )?;
    Ok(())
}

/// How often BN wins at lr 1e-4 over other initialization seeds.
struct Robustness {
    bn_wins: u32,
    mean_drop_bn: f64,
    mean_drop_plain: f64,
}

fn repeat_small_lr(moons: &Moons, args: &Args, device: &Device) -> Result<Robustness, String> {
    let lr = LEARNING_RATES[0];
    let mut result = Robustness {
        bn_wins: 0,
        mean_drop_bn: 0.0,
        mean_drop_plain: 0.0,
    };
    for seed in (1..=args.repeats).map(|i| args.seed.wrapping_add(i)) {
        let drop = |bn: bool| -> Result<f64, String> {
            let (losses, _) = train_moons(bn, moons, lr, seed, args, device)?;
            Ok(losses[0] - losses[losses.len() - 1])
        };
        let (bn, plain) = (drop(true)?, drop(false)?);
        result.bn_wins += u32::from(bn > plain);
        result.mean_drop_bn += bn / f64::from(args.repeats.max(1));
        result.mean_drop_plain += plain / f64::from(args.repeats.max(1));
    }
    Ok(result)
}

fn epochs(losses: &[f64]) -> Vec<(f64, f64)> {
    losses
        .iter()
        .enumerate()
        .map(|(i, l)| ((i + 1) as f64, *l))
        .collect()
}

/// One run of `MoonsMlp` (with BatchNorm when `bn`) on `bn_train::train`: plain SGD at `lr`,
/// batches of 32 (the last one has 8 points), `seed` fixing the initialization and the
/// shuffling, every point evaluated after each epoch. The same seed before each model gives
/// both variants the same Linear weights (BatchNorm draws no random numbers), as in
/// moons.py. Returns the per-epoch mean of the batch losses (moons.py's
/// `epoch_loss_mean_of_batches`) and the final evaluation-mode accuracy on all points.
fn train_moons(
    bn: bool,
    moons: &Moons,
    lr: f64,
    seed: u32,
    args: &Args,
    device: &Device,
) -> Result<(Vec<f64>, f64), String> {
    let norm = if bn { NormKind::Batch } else { NormKind::None };
    device.seed(u64::from(seed));
    let model = MoonsMlpConfig::new().with_norm(norm).init(device);
    let config = TrainConfig::new()
        .with_epochs(args.epochs)
        .with_batch_size(BATCH)
        .with_lr(lr)
        .with_momentum(0.0)
        .with_schedule(LrSchedule::Constant)
        .with_norm(norm)
        .with_seed(u64::from(seed))
        .with_num_workers(0);
    let data = TrainTest {
        train: moons.clone(),
        test: moons.clone(),
    };
    let dir = run_dir(&args.artifact_dir, lr, bn, seed);
    let outcome = train(
        model,
        "MoonsMlp",
        &config,
        data,
        device,
        &dir,
        RunOptions::quiet(),
    )
    .map_err(|err| format!("{}: {err}", dir.display()))?;
    let steps_per_epoch = moons.points.len().div_ceil(BATCH);
    let losses = outcome
        .step_losses
        .chunks(steps_per_epoch)
        .map(|epoch| epoch.iter().sum::<f64>() / epoch.len() as f64)
        .collect();
    Ok((losses, outcome.report.final_test_accuracy))
}

/// `runs/lr<lr>-<bn|plain>-seed<seed>` under the artifact directory.
fn run_dir(artifacts: &Path, lr: f64, bn: bool, seed: u32) -> PathBuf {
    let norm = if bn { "bn" } else { "plain" };
    artifacts
        .join("runs")
        .join(format!("lr{lr}-{norm}-seed{seed}"))
}
