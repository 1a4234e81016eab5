//! BatchNorm at a small learning rate: scikit-learn's two moons (1,000 points, noise 0.1),
//! a 2-64-2 MLP with and without BatchNorm, plain SGD, batch 32, 10 epochs, at a learning
//! rate of 1e-4 and at 0.1. Prints the per-epoch losses next to PyTorch's
//! (`docs/pytorch/moons.out`) and plots both curves per learning rate.
//!
//! ```text
//! cargo run --release --example mlp_moons [-- --seed 42]
//! ```
//! Writes `moons.svg` and `moons.json` to `artifacts/mlp_moons/` (or `--artifact-dir`).

use std::path::PathBuf;
use std::process::ExitCode;

use bn_models::{MoonsMlp, MoonsMlpConfig, NormKind};
use bn_train::data::{Moons, NumpyRandomState, make_moons};
use bn_train::{Line, Panel, correct_predictions, cross_entropy};
use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
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
            // The same seed before each model, so both variants start from the same Linear
            // weights (BatchNorm draws no random numbers), as in moons.py.
            device.seed(u64::from(args.seed));
            let norm = if bn { NormKind::Batch } else { NormKind::None };
            let model = MoonsMlpConfig::new().with_norm(norm).init(&device);
            let (losses, accuracy) = train(model, &moons, lr, args.epochs, args.seed, &device);
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

    let robustness = repeat_small_lr(&moons, &args, &device);
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

fn repeat_small_lr(moons: &Moons, args: &Args, device: &Device) -> Robustness {
    let lr = LEARNING_RATES[0];
    let mut result = Robustness {
        bn_wins: 0,
        mean_drop_bn: 0.0,
        mean_drop_plain: 0.0,
    };
    for seed in (1..=args.repeats).map(|i| args.seed.wrapping_add(i)) {
        let drop = |norm: NormKind| {
            device.seed(u64::from(seed));
            let model = MoonsMlpConfig::new().with_norm(norm).init(device);
            let (losses, _) = train(model, moons, lr, args.epochs, seed, device);
            losses[0] - losses[losses.len() - 1]
        };
        let (bn, plain) = (drop(NormKind::Batch), drop(NormKind::None));
        result.bn_wins += u32::from(bn > plain);
        result.mean_drop_bn += bn / f64::from(args.repeats.max(1));
        result.mean_drop_plain += plain / f64::from(args.repeats.max(1));
    }
    result
}

fn epochs(losses: &[f64]) -> Vec<(f64, f64)> {
    losses
        .iter()
        .enumerate()
        .map(|(i, l)| ((i + 1) as f64, *l))
        .collect()
}

/// SGD on shuffled batches of 32 (the last one has 8 points); returns the per-epoch mean of
/// the batch losses and the evaluation-mode accuracy on all points.
fn train(
    mut model: MoonsMlp,
    moons: &Moons,
    lr: f64,
    epochs: usize,
    seed: u32,
    device: &Device,
) -> (Vec<f64>, f64) {
    let mut optimizer = SgdConfig::new().init();
    let mut order: Vec<usize> = (0..moons.points.len()).collect();
    let mut shuffler = NumpyRandomState::new(seed);
    let mut losses = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        shuffler.shuffle(&mut order);
        let mut total = 0.0;
        let batches = order.chunks(BATCH).len();
        for batch in order.chunks(BATCH) {
            let (points, labels) = tensors(moons, batch, device);
            let loss = cross_entropy(model.forward(points), labels);
            total += loss.clone().into_scalar::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
        losses.push(total / batches as f64);
    }
    let eval = model.valid();
    let all: Vec<usize> = (0..moons.points.len()).collect();
    let (points, labels) = tensors(moons, &all, &device.clone().inner());
    let correct = correct_predictions(eval.forward(points), labels);
    (losses, correct as f64 / all.len() as f64)
}

fn tensors(moons: &Moons, indices: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let coords: Vec<f32> = indices
        .iter()
        .flat_map(|&i| moons.points[i].map(|c| c as f32))
        .collect();
    let labels: Vec<i64> = indices.iter().map(|&i| moons.labels[i] as i64).collect();
    (
        Tensor::from_data(TensorData::new(coords, [indices.len(), 2]), device),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    )
}
