//! Loads a PyTorch state_dict of the reference PyTorch `BNLeNet` or `MLPWithBN` (`.pt` or `.safetensors`),
//! evaluates it in evaluation mode on the Fashion-MNIST test set, and writes the accuracy and
//! the logits of the first 16 test images as JSON. `--fold` also folds the BatchNorms into the
//! layers before them and reports the inference speed-up; `--export` writes the weights back
//! as a safetensors file that PyTorch's `load_state_dict` accepts. `--recalibrate N` first
//! re-estimates every BatchNorm's running statistics over the first N training images
//! (PyTorch's `torch.optim.swa_utils.update_bn`) and writes them under `running_stats`.
//! `--dtype bf16` (or `f16`) evaluates a half model: parameters and activations in that type,
//! every BatchNorm's running statistics kept in f32.
//!
//! ```text
//! cargo run --release --example import_pytorch -- --model bn_lenet \
//!     --weights tests/data/interop/bn_lenet.pt --out logits.json --fold
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bn_models::pytorch::{load_state_dict, running_statistics, save_safetensors};
use bn_models::{
    BnLeNet, BnLeNetConfig, Classify, FoldBatchNorm, MlpWithBn, MlpWithBnConfig, PytorchStateDict,
};
use bn_train::data::{FashionMnist, Split, locate};
use bn_train::{evaluate, recalibrate_on};
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Distribution, Tensor};
use burn_batchnorm::cli::{
    FloatArg, RECALIBRATION_BATCH, announce_device, exit_code, values_by_dtype, write_json,
};
use burn_batchnorm::{BackendKind, cli};
use clap::{Parser, ValueEnum};
use serde_json::json;

/// Import a PyTorch checkpoint of BNLeNet or MLPWithBN and evaluate it on Fashion-MNIST.
#[derive(Parser, Debug)]
struct Args {
    /// Which PyTorch class the checkpoint holds.
    #[arg(long, value_enum)]
    model: ModelArg,
    /// The state_dict: `.pt`/`.pth` (torch.save) or `.safetensors`.
    #[arg(long)]
    weights: PathBuf,
    /// Folder with the Fashion-MNIST IDX files (default: the usual places, see the README).
    #[arg(long, value_parser = cli::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Write `{"eval_logits_first16": [...], "eval_test_accuracy": x}` here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also fold the BatchNorms away, check the outputs agree, and time both networks.
    #[arg(long)]
    fold: bool,
    /// Before evaluating, re-estimate every BatchNorm's running statistics over the first N
    /// training images (file order, batches of 128), as PyTorch's
    /// `torch.optim.swa_utils.update_bn`; the JSON gains them under `running_stats`.
    #[arg(long, value_name = "N", value_parser = cli::at_least_two)]
    recalibrate: Option<usize>,
    /// Write the imported weights back as a PyTorch-keyed safetensors file.
    #[arg(long)]
    export: Option<PathBuf>,
    /// The model's float type: `bf16` or `f16` build a half model (parameters, inputs and
    /// activations in half, the BatchNorms' running statistics in f32).
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelArg {
    /// The reference PyTorch `BNLeNet` (keys `net.0.weight` ... `net.15.bias`).
    #[value(name = "bn_lenet")]
    BnLenet,
    /// The classic `MLPWithBN` of `scripts/gen_interop.py` (keys `fc1`, `bn1`, `fc2`, `bn2`, `fc3`).
    #[value(name = "mlp_with_bn")]
    MlpWithBn,
}

/// How many test images' logits are written.
const LOGITS_KEPT: usize = 16;
const EVAL_BATCH: usize = 500;

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let mut device = announce_device(args.backend)?;
    args.dtype.configure(&mut device)?;
    let dir = locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let test = FashionMnist::load(&dir, Split::Test).map_err(|e| e.to_string())?;
    match args.model {
        ModelArg::BnLenet => {
            let model = BnLeNetConfig::new().init(&device);
            import_and_evaluate::<BnLeNet>(model, &args, &dir, &test, &device)
        }
        ModelArg::MlpWithBn => {
            let model = MlpWithBnConfig::new().init(&device);
            import_and_evaluate::<MlpWithBn>(model, &args, &dir, &test, &device)
        }
    }
}

fn import_and_evaluate<M>(
    model: M,
    args: &Args,
    data_dir: &Path,
    test: &FashionMnist,
    device: &Device,
) -> Result<(), String>
where
    M: PytorchStateDict + Classify<Input = Tensor<4>> + FoldBatchNorm,
{
    let model = load_state_dict(model, &args.weights)
        .map_err(|e| e.to_string())?
        .valid();
    let dtypes = values_by_dtype(&model);
    println!(
        "loaded {} from {} (float values by dtype: {dtypes:?})",
        M::CLASS,
        args.weights.display()
    );
    let mut recalibration = None;
    let model = match args.recalibrate {
        None => model,
        Some(images) => {
            let train = FashionMnist::load(data_dir, Split::Train).map_err(|e| e.to_string())?;
            let before = evaluate(&model, test, EVAL_BATCH, 0, device).accuracy();
            let model = recalibrate_on(model, &train, images, RECALIBRATION_BATCH, device);
            println!(
                "recalibrated every BatchNorm over the first {} training images (batches of \
                 {RECALIBRATION_BATCH}); test accuracy before: {before:.4}",
                images.min(train.len())
            );
            recalibration = Some(json!({
                "images": images.min(train.len()),
                "batch_size": RECALIBRATION_BATCH,
                "eval_test_accuracy_before": before,
            }));
            model
        }
    };

    let eval = evaluate(&model, test, EVAL_BATCH, LOGITS_KEPT, device);
    println!(
        "{}: test accuracy {:.4} ({}/{}, evaluation mode)",
        M::CLASS,
        eval.accuracy(),
        eval.correct,
        eval.total
    );
    let mut report = json!({
        "eval_logits_first16": eval.first_logits,
        "eval_test_accuracy": eval.accuracy(),
        "dtype": args.dtype.name(),
        "values_by_dtype": dtypes,
    });
    if let Some(recalibration) = recalibration {
        report["recalibration"] = recalibration;
        report["running_stats"] = running_stats_json(&model);
    }

    if args.fold {
        let folded = model.fold_batchnorm().map_err(|e| e.to_string())?;
        let folded_eval = evaluate(&folded, test, EVAL_BATCH, LOGITS_KEPT, device);
        let max_diff = max_abs_diff(&eval.first_logits, &folded_eval.first_logits);
        println!(
            "folded: test accuracy {:.4}, max |logit difference| on the first {LOGITS_KEPT} images {max_diff:.2e}",
            folded_eval.accuracy()
        );
        let mut speedups = Vec::new();
        for (batch, reps) in [(1, 300), (256, 30)] {
            let images = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Default, device);
            let plain_ms = median_forward_ms(&model, &images, reps);
            let folded_ms = median_forward_ms(&folded, &images, reps);
            println!(
                "batch {batch:>3}: with BatchNorm {plain_ms:.3} ms, folded {folded_ms:.3} ms, speed-up {:.2}x",
                plain_ms / folded_ms
            );
            speedups.push(
                json!({"batch": batch, "bn_ms": plain_ms, "folded_ms": folded_ms,
                                 "speedup": plain_ms / folded_ms}),
            );
        }
        report["fold"] = json!({
            "eval_test_accuracy": folded_eval.accuracy(),
            "max_abs_logit_diff_first16": max_diff,
            "timing": speedups,
        });
    }

    if let Some(path) = &args.export {
        save_safetensors(&model, path).map_err(|e| e.to_string())?;
        println!("exported PyTorch-keyed safetensors: {}", path.display());
    }
    if let Some(path) = &args.out {
        write_json(path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Every BatchNorm's running statistics under their PyTorch keys; `num_batches_tracked` as an
/// integer.
fn running_stats_json<M: PytorchStateDict>(model: &M) -> serde_json::Value {
    running_statistics(model)
        .into_iter()
        .map(|(key, values)| {
            let value = match key.ends_with("num_batches_tracked") {
                true => json!(values[0] as i64),
                false => json!(values),
            };
            (key, value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The median wall time of one forward pass (read back to the host) over `reps` runs.
fn median_forward_ms<M: Classify<Input = Tensor<4>>>(
    model: &M,
    images: &Tensor<4>,
    reps: usize,
) -> f64 {
    for _ in 0..3 {
        let _ = model.classify(images.clone()).into_data();
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let _ = model.classify(images.clone()).into_data();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
