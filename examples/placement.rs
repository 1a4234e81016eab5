//! Practical questions about where BatchNorm goes, on the classic `MLPWithBN`
//! (784-256-256-10) and Fashion-MNIST: before or after the ReLU, with or without dropout, and
//! whether the linear layer before BN needs its bias (BN subtracts the mean right after, so
//! the bias should be dead weight). Each variant is trained with several seeds so "equal
//! within noise" can be judged against the seed-to-seed spread.
//!
//! ```text
//! cargo run --release --example placement [-- --seeds 5 --epochs 5]
//! ```
//! Writes `placement.svg` and `placement.json` (and each run's artifacts) to
//! `artifacts/placement/`.

use std::path::PathBuf;
use std::process::ExitCode;

use bn_models::{MlpWithBnConfig, NormKind, trainable_params};
use bn_train::data::{TrainTest, locate};
use bn_train::{Line, LrSchedule, Panel, TrainConfig};
use burn_batchnorm::cli::{announce_device, exit_code, train_run, write_outputs};
use burn_batchnorm::{BackendKind, cli};
use clap::Parser;
use serde_json::json;

/// Where BatchNorm goes in an MLP, on a fixed short budget.
#[derive(Parser, Debug)]
struct Args {
    /// Seeds per variant (0, 1, ...).
    #[arg(long, default_value_t = 5, value_parser = cli::at_least_one)]
    seeds: usize,
    /// Epochs per run.
    #[arg(long, default_value_t = 5, value_parser = cli::at_least_one)]
    epochs: usize,
    /// Train on the first N training images (all 60,000 by default).
    #[arg(long, default_value_t = 60_000)]
    limit_train: usize,
    /// Evaluate on the first N test images.
    #[arg(long, default_value_t = 10_000)]
    limit_test: usize,
    /// Dropout probability of the dropout variants.
    #[arg(long, default_value_t = 0.2, value_parser = cli::unit_interval)]
    dropout: f64,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, value_parser = cli::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Where the figure, the numbers and each run's artifacts go.
    #[arg(long, default_value = "artifacts/placement")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

/// One architecture of the comparison.
struct Variant {
    name: &'static str,
    config: MlpWithBnConfig,
}

fn variants(dropout: f64) -> Vec<Variant> {
    let seed_layout = MlpWithBnConfig::new();
    vec![
        Variant {
            name: "BN before ReLU (seed)",
            config: seed_layout.clone(),
        },
        Variant {
            name: "BN after ReLU",
            config: seed_layout.clone().with_norm_after_activation(true),
        },
        Variant {
            name: "BN before ReLU + dropout",
            config: seed_layout.clone().with_dropout(dropout),
        },
        Variant {
            name: "BN after ReLU + dropout",
            config: seed_layout
                .clone()
                .with_norm_after_activation(true)
                .with_dropout(dropout),
        },
        Variant {
            name: "BN before ReLU, bias=False",
            config: seed_layout.clone().with_hidden_bias(false),
        },
        Variant {
            name: "no BN",
            config: seed_layout.with_norm(NormKind::None),
        },
    ]
}

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let device = announce_device(args.backend)?.autodiff();
    let dir = locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let data = TrainTest::load(&dir).map_err(|e| e.to_string())?;

    let variants = variants(args.dropout);
    // Per variant: parameter count, per seed the per-epoch test accuracies.
    let mut results: Vec<(usize, Vec<Vec<f64>>)> = Vec::new();
    for (v, variant) in variants.iter().enumerate() {
        let mut per_seed = Vec::new();
        let mut params = 0;
        for seed in 0..args.seeds as u64 {
            let config = TrainConfig::new()
                .with_epochs(args.epochs)
                .with_lr(0.1)
                .with_schedule(LrSchedule::Cosine)
                .with_norm(variant.config.norm)
                .with_seed(seed)
                .with_limit_train(Some(args.limit_train))
                .with_limit_test(Some(args.limit_test));
            device.seed(seed);
            let model = variant.config.init(&device);
            params = trainable_params(&model);
            let name = format!("{} (seed {seed})", variant.name);
            let artifacts = args.artifact_dir.join(format!("variant{v}_seed{seed}"));
            let outcome = train_run(model, &name, &config, &data, &device, &artifacts)?;
            per_seed.push(outcome.epochs.iter().map(|e| e.test_accuracy).collect());
        }
        results.push((params, per_seed));
    }

    println!(
        "\nMLP 784-256-256-10, {} epochs on {} images, SGD momentum 0.9, lr 0.1 cosine, {} seeds",
        args.epochs, args.limit_train, args.seeds
    );
    println!("variant                      | params  | test acc mean ± std (eval) | per seed");
    let mut rows = Vec::new();
    for (variant, (params, per_seed)) in variants.iter().zip(&results) {
        let finals: Vec<f64> = per_seed.iter().map(|accs| accs[accs.len() - 1]).collect();
        let (mean, std) = mean_std(&finals);
        let seeds: Vec<String> = finals.iter().map(|a| format!("{a:.4}")).collect();
        println!(
            "{:<28} | {:>7} | {:>15.4} ± {:.4}      | {}",
            variant.name,
            params,
            mean,
            std,
            seeds.join(" ")
        );
        rows.push(json!({"variant": variant.name, "trainable_params": params,
            "test_accuracy_mean": mean, "test_accuracy_std": std, "test_accuracy_per_seed": finals,
            "test_accuracy_per_epoch_per_seed": per_seed}));
    }

    let lines = variants
        .iter()
        .zip(&results)
        .map(|(variant, (_, per_seed))| {
            let points = (0..args.epochs)
                .map(|e| {
                    let at_epoch: Vec<f64> = per_seed.iter().map(|accs| accs[e]).collect();
                    ((e + 1) as f64, mean_std(&at_epoch).0)
                })
                .collect();
            Line::new(variant.name, points)
        })
        .collect();
    let panels = [Panel::new(
        "epoch",
        "test accuracy (eval mode), mean over seeds",
        lines,
    )];
    let numbers = json!({
        "epochs": args.epochs, "train_images": args.limit_train, "test_images": args.limit_test,
        "seeds": args.seeds, "dropout": args.dropout, "optimizer": "SGD momentum 0.9, lr 0.1 cosine, batch 128",
        "variants": rows,
    });
    write_outputs(
        &args.artifact_dir,
        "placement",
        "Fashion-MNIST MLP: where BatchNorm goes",
        &panels,
        &numbers,
    )?;
    Ok(())
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}
