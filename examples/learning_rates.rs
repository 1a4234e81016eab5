//! "Batch normalization allows higher learning rates": BN-LeNet against plain LeNet on
//! Fashion-MNIST, plain SGD whose peak learning rate (cosine schedule) is swept over
//! {0.01, 0.1, 0.5, 1, 2} and on to 5 and 10.
//! Same initialization seed, same data order, same budget for every run.
//!
//! ```text
//! cargo run --release --example learning_rates [-- --epochs 3 --limit-train 60000]
//! ```
//! Writes `learning_rates.svg` and `learning_rates.json` (and each run's own artifacts) to
//! `artifacts/learning_rates/`.

use std::path::PathBuf;
use std::process::ExitCode;

use bn_models::{BnLeNetConfig, NormKind};
use bn_train::data::{TrainTest, locate};
use bn_train::{Line, LrSchedule, Panel, TrainConfig};
use burn_batchnorm::cli::{announce_device, exit_code, train_run, write_outputs};
use burn_batchnorm::{BackendKind, cli};
use clap::Parser;
use serde_json::json;

/// Sweep the learning rate for BN-LeNet and plain LeNet.
#[derive(Parser, Debug)]
struct Args {
    /// Learning rates to try (the five classic rates, then 5 and 10 to find where each breaks).
    #[arg(long, value_delimiter = ',', default_values_t = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0])]
    lrs: Vec<f64>,
    /// Epochs per run.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Train on the first N training images (the sweep's budget; all 60,000 by default).
    #[arg(long, default_value_t = 60_000)]
    limit_train: usize,
    /// Evaluate on the first N test images.
    #[arg(long, default_value_t = 10_000)]
    limit_test: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Seed of the initialization and the shuffling (the same for every run).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, value_parser = cli::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Where the figure, the numbers and each run's artifacts go.
    #[arg(long, default_value = "artifacts/learning_rates")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

struct Outcome {
    norm: NormKind,
    lr: f64,
    train_loss: f64,
    test_accuracy: f64,
    seconds: f64,
}

fn run(args: Args) -> Result<(), String> {
    if let Some(bad) = args.lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
        return Err(format!(
            "--lrs: every learning rate must be positive and finite, got {bad}"
        ));
    }
    let device = announce_device(args.backend)?.autodiff();
    let dir = locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let data = TrainTest::load(&dir).map_err(|e| e.to_string())?;

    let mut outcomes = Vec::new();
    for norm in [NormKind::Batch, NormKind::None] {
        for &lr in &args.lrs {
            let config = TrainConfig::new()
                .with_epochs(args.epochs)
                .with_batch_size(args.batch_size)
                .with_lr(lr)
                .with_momentum(0.0)
                .with_schedule(LrSchedule::Cosine)
                .with_norm(norm)
                .with_seed(args.seed)
                .with_limit_train(Some(args.limit_train))
                .with_limit_test(Some(args.limit_test));
            device.seed(args.seed);
            let model = BnLeNetConfig::new().with_norm(norm).init(&device);
            let name = format!("{} lr={lr}", model_name(norm));
            let artifacts = args.artifact_dir.join(format!("{norm}_lr{lr}"));
            let outcome = train_run(model, &name, &config, &data, &device, &artifacts)?;
            outcomes.push(Outcome {
                norm,
                lr,
                train_loss: outcome.report.final_train_loss,
                test_accuracy: outcome.report.final_test_accuracy,
                seconds: outcome.report.wall_time_s,
            });
        }
    }

    println!(
        "\n{} epochs on {} images, batch {}, plain SGD, cosine schedule from the lr, seed {}",
        args.epochs, args.limit_train, args.batch_size, args.seed
    );
    println!("model    |     lr | train loss | test acc (eval) | time s");
    for o in &outcomes {
        println!(
            "{:<8} | {:>6} | {:>10.4} | {:>15.4} | {:>6.1}",
            model_name(o.norm),
            o.lr,
            o.train_loss,
            o.test_accuracy,
            o.seconds
        );
    }
    for norm in [NormKind::Batch, NormKind::None] {
        let best = outcomes
            .iter()
            .filter(|o| o.norm == norm)
            .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy))
            .expect("at least one learning rate");
        println!(
            "{}: best test accuracy {:.4} at lr {}",
            model_name(norm),
            best.test_accuracy,
            best.lr
        );
    }

    let line = |norm: NormKind, value: fn(&Outcome) -> f64| {
        let points = outcomes
            .iter()
            .filter(|o| o.norm == norm)
            .map(|o| (o.lr, value(o)))
            .collect();
        Line::new(model_name(norm), points)
    };
    let panels = [
        Panel::new(
            "learning rate",
            "test accuracy (eval mode)",
            vec![
                line(NormKind::Batch, |o| o.test_accuracy),
                line(NormKind::None, |o| o.test_accuracy),
            ],
        )
        .log_x(),
        Panel::new(
            "learning rate",
            "final training loss",
            vec![
                line(NormKind::Batch, |o| o.train_loss),
                line(NormKind::None, |o| o.train_loss),
            ],
        )
        .log_x(),
    ];
    let numbers = json!({
        "epochs": args.epochs, "train_images": args.limit_train, "test_images": args.limit_test,
        "batch_size": args.batch_size, "optimizer": "SGD, momentum 0, cosine schedule from lr to 0", "seed": args.seed,
        "runs": outcomes.iter().map(|o| json!({"model": model_name(o.norm), "lr": o.lr,
            "final_train_loss": o.train_loss, "test_accuracy": o.test_accuracy,
            "wall_time_s": o.seconds})).collect::<Vec<_>>(),
    });
    write_outputs(
        &args.artifact_dir,
        "learning_rates",
        "Fashion-MNIST: test accuracy against learning rate",
        &panels,
        &numbers,
    )?;
    Ok(())
}

fn model_name(norm: NormKind) -> &'static str {
    match norm {
        NormKind::None => "LeNet",
        _ => "BN-LeNet",
    }
}
