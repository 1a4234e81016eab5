//! Trains D2L's BN-LeNet on Fashion-MNIST with `bn_train::train` (default: SGD with momentum
//! 0.9, lr 0.1 on a cosine schedule, batch 128, 10 epochs; `--momentum 0 --schedule constant`
//! is the reference recipe) on burn-train's `Learner`, or on data-parallel replicas with
//! `--devices`/`--sync-bn`, and writes config, checkpoints, metrics.csv, curves.svg and
//! report.json to the artifact directory (`--resume` continues from the last checkpoint).
//! `--recalibrate N` then re-estimates the BatchNorm statistics over N training images
//! (PyTorch's `update_bn`) and reports the test accuracy before and after.
//!
//! ```text
//! cargo run --release --example lenet_fashion_mnist                    # flex (CPU)
//! cargo run --release --example lenet_fashion_mnist --features wgpu    # GPU
//! cargo run --release --example lenet_fashion_mnist -- --norm none     # plain LeNet
//! cargo run --release --example lenet_fashion_mnist -- --devices 2 --sync-bn   # 2 replicas
//! cargo run --release --example lenet_fashion_mnist -- --recalibrate 10000       # precise BN
//! cargo run --release --example lenet_fashion_mnist -- --download   # no Debian package
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bn_models::{BnLeNet, BnLeNetConfig, NormKind};
use bn_train::data::{Source, TrainTest, candidate_dirs, download, locate};
use bn_train::{
    LrSchedule, OptimizerKind, RunOptions, TrainConfig, evaluate, last_checkpoint, metrics_table,
    recalibrate_on, train,
};
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use burn_batchnorm::cli::{RECALIBRATION_BATCH, announce_device, exit_code, write_json};
use burn_batchnorm::{BackendKind, cli, run_on_cpu_pool};
use clap::Parser;

/// Train BN-LeNet on Fashion-MNIST.
#[derive(Parser, Debug)]
struct Args {
    /// Number of epochs.
    #[arg(long, default_value_t = 10, value_parser = cli::at_least_one)]
    epochs: usize,
    /// Mini-batch size (at least 2).
    #[arg(long, default_value_t = 128, value_parser = cli::batch_size)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, value_parser = cli::learning_rate, allow_negative_numbers = true)]
    lr: f64,
    /// Optimizer: sgd or adam.
    #[arg(long, default_value_t = OptimizerKind::Sgd)]
    optimizer: OptimizerKind,
    /// SGD momentum (0 = plain SGD, the reference recipe).
    #[arg(long, default_value_t = 0.9, value_parser = cli::unit_interval, allow_negative_numbers = true)]
    momentum: f64,
    /// Learning-rate schedule: cosine (annealing to 0) or constant (the reference recipe).
    #[arg(long, default_value_t = LrSchedule::Cosine)]
    schedule: LrSchedule,
    /// Normalization layer: batch, burn, group, layer, renorm (Batch Renormalization), ghost
    /// (Ghost BatchNorm, ghost batches of 16) or none (plain LeNet); `ours` is
    /// accepted for batch, its name before 0.2.
    #[arg(long, default_value_t = NormKind::Batch)]
    norm: NormKind,
    /// Seed of the initialization and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder with the four Fashion-MNIST IDX .gz files (default: $FASHION_MNIST_DIR,
    /// ./data/fashion-mnist, /usr/share/datasets/fashion-mnist).
    #[arg(long, value_parser = cli::directory_path)]
    data_dir: Option<PathBuf>,
    /// First fetch the four files from Zalando Research's server into --data-dir (default:
    /// $FASHION_MNIST_DIR, else ./data/fashion-mnist), checking each file's SHA-256 and
    /// resuming a download that was cut off; files already there are checked and kept.
    #[arg(long)]
    download: bool,
    /// Where to write the run's artifacts (default: artifacts/lenet_fashion_mnist/NORM).
    #[arg(long)]
    artifact_dir: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Continue from the last checkpoint in the artifact directory.
    #[arg(long)]
    resume: bool,
    /// Data-parallel replicas (threads on the chosen backend), each given an equal slice of
    /// every batch; `--batch-size` stays the global batch.
    #[arg(long, default_value_t = 1, value_parser = cli::at_least_one)]
    devices: usize,
    /// Synchronize BatchNorm's statistics across the replicas (SyncBatchNorm).
    #[arg(long)]
    sync_bn: bool,
    /// After training, re-estimate every BatchNorm's running statistics over the first N
    /// training images (file order, batches of 128; PyTorch's `update_bn`), and report the
    /// test accuracy before and after (also in recalibration.json). Needs --norm batch or
    /// ghost.
    #[arg(long, value_name = "N", value_parser = cli::at_least_two)]
    recalibrate: Option<usize>,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

/// Where a run writes its artifacts without `--artifact-dir`.
fn default_artifacts(norm: NormKind) -> PathBuf {
    PathBuf::from("artifacts/lenet_fashion_mnist").join(norm.name())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.devices == 1 {
        // One thread drives the training: let it run the CPU kernels with the pool.
        run_on_cpu_pool();
    }
    exit_code(run(args))
}

fn run(args: Args) -> Result<(), String> {
    let device = announce_device(args.backend)?;

    let config = TrainConfig::new()
        .with_epochs(args.epochs)
        .with_batch_size(args.batch_size)
        .with_lr(args.lr)
        .with_optimizer(args.optimizer)
        .with_momentum(args.momentum)
        .with_schedule(args.schedule)
        .with_norm(args.norm)
        .with_seed(args.seed)
        .with_limit_train(args.limit_train)
        .with_limit_test(args.limit_test)
        .with_devices(args.devices)
        .with_sync_bn(args.sync_bn);
    config.validate()?;
    if args.recalibrate.is_some() && !matches!(args.norm, NormKind::Batch | NormKind::Ghost) {
        return Err(format!(
            "--recalibrate re-estimates this crate's BatchNorm statistics; --norm {} has none \
             (use --norm batch or ghost)",
            args.norm
        ));
    }

    let dir = if args.download {
        let dir = candidate_dirs(args.data_dir.as_deref()).remove(0);
        download(&dir, &Source::canonical()).map_err(|e| e.to_string())?;
        dir
    } else {
        locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?
    };
    let data = TrainTest::load(&dir).map_err(|e| e.to_string())?;
    println!("data: {}", dir.display());

    let artifacts = args
        .artifact_dir
        .clone()
        .unwrap_or_else(|| default_artifacts(args.norm));
    if args.resume && args.artifact_dir.is_none() && last_checkpoint(&artifacts).is_none() {
        // Version 0.1 called `--norm batch` `ours`, and wrote its artifacts under that name.
        let before_0_2 = PathBuf::from("artifacts/lenet_fashion_mnist/ours");
        if args.norm == NormKind::Batch && last_checkpoint(&before_0_2).is_some() {
            return Err(format!(
                "cannot resume: no checkpoint in {}, but version 0.1 left one in {}: pass \
                 --artifact-dir {} (or rename the directory)",
                artifacts.display(),
                before_0_2.display(),
                before_0_2.display()
            ));
        }
    }
    let device = device.autodiff();
    device.seed(args.seed);
    let model = BnLeNetConfig::new().with_norm(args.norm).init(&device);
    let name = match args.norm {
        NormKind::None => "LeNet".to_string(),
        norm => format!("BN-LeNet (norm: {norm})"),
    };
    let outcome = train(
        model,
        &name,
        &config,
        data.clone(),
        &device,
        &artifacts,
        RunOptions {
            resume: args.resume,
            ..RunOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;

    let report = &outcome.report;
    let replicas = match (args.devices, args.sync_bn) {
        (1, false) => String::new(),
        (n, false) => format!(", {n} replicas"),
        (n, true) => format!(", {n} replicas with SyncBatchNorm"),
    };
    println!("\n{}", metrics_table(&outcome.epochs));
    println!(
        "{name}{replicas}: test accuracy {:.4} (eval mode), train loss {:.4}, train accuracy \
         {:.4}",
        report.final_test_accuracy, report.final_train_loss, report.final_train_accuracy
    );
    println!(
        "{} epoch(s) in {:.1} s: {:.1} s/epoch, {:.0} images/s",
        report.epochs_this_run,
        report.wall_time_s,
        report.seconds_per_epoch,
        report.images_per_second
    );
    if let (Some(gamma), Some(beta)) = (&report.first_norm_gamma, &report.first_norm_beta) {
        println!("first norm layer: gamma = {gamma:?}");
        println!("                  beta  = {beta:?}");
    }
    if let Some(images) = args.recalibrate {
        let data = config.limit(data);
        recalibrate(
            outcome.model.model,
            &data,
            images,
            &device.inner(),
            &artifacts,
        )?;
    }
    println!("artifacts: {}", artifacts.display());
    Ok(())
}

/// `--recalibrate`: the trained model's BatchNorm statistics re-estimated over the first
/// `images` training images; prints the test accuracy before and after and writes them to
/// `recalibration.json`.
fn recalibrate(
    model: BnLeNet,
    data: &TrainTest,
    images: usize,
    device: &Device,
    artifacts: &Path,
) -> Result<(), String> {
    const EVAL_BATCH: usize = 500;
    let before = evaluate(&model, &data.test, EVAL_BATCH, 0, device).accuracy();
    let model = recalibrate_on(model, &data.train, images, RECALIBRATION_BATCH, device);
    let after = evaluate(&model, &data.test, EVAL_BATCH, 0, device).accuracy();
    let images = images.min(data.train.len());
    println!(
        "recalibrated every BatchNorm over the first {images} training images (batches of \
         {RECALIBRATION_BATCH}): test accuracy {before:.4} before, {after:.4} after"
    );
    let path = artifacts.join("recalibration.json");
    write_json(
        &path,
        &serde_json::json!({
            "images": images,
            "batch_size": RECALIBRATION_BATCH,
            "test_accuracy_before": before,
            "test_accuracy_after": after,
        }),
    )
}
