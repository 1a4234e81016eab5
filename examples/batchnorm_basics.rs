//! A walk-through of one BatchNorm layer: what it does to a batch, how training and
//! evaluation mode differ, which tensors it learns and which it only tracks, and that the
//! textbook (composed) and fused compute paths agree.
//!
//! ```text
//! cargo run --release --example batchnorm_basics [-- --seed 0]
//! ```
//! Writes `basics.svg` and `basics.json` to `artifacts/batchnorm_basics/` (or `--artifact-dir`).

use std::path::PathBuf;
use std::process::ExitCode;

use bn_layers::{BatchNorm, BatchNormConfig, ComputePath};
use bn_train::{Line, Panel};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Int, Tensor};
use burn_batchnorm::BackendKind;
use burn_batchnorm::cli::{announce_device, exit_code, write_outputs};
use clap::Parser;
use serde_json::json;

/// Walk through one BatchNorm1d(5) layer on `randn(32, 5) * 10 + 5`.
#[derive(Parser, Debug)]
struct Args {
    /// Seed of the input batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write basics.svg and basics.json.
    #[arg(long, default_value = "artifacts/batchnorm_basics")]
    artifact_dir: PathBuf,
    /// Backend; defaults to the one the cargo features select.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

const BATCH: usize = 32;
const FEATURES: usize = 5;
/// The agreement required of the two compute paths.
const PATH_TOLERANCE: f32 = 1e-6;

fn main() -> ExitCode {
    exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let device = announce_device(args.backend)?.autodiff();
    device.seed(args.seed);

    // 1. What BatchNorm does to a batch (training mode: the batch's own statistics).
    let x = Tensor::<2>::random([BATCH, FEATURES], Distribution::Normal(0.0, 1.0), &device)
        .mul_scalar(10.0)
        .add_scalar(5.0);
    let bn = BatchNormConfig::new_1d(FEATURES).init(&device);
    let y = bn.forward(x.clone());
    let (mean_in, std_in) = (column_means(&x), column_stds(&x));
    let (mean_out, std_out) = (column_means(&y), column_stds(&y));
    println!("\n1. x = randn(32, 5) * 10 + 5 through BatchNorm1d(5) in training mode");
    println!("feature | mean before | std before | mean after | std after");
    for f in 0..FEATURES {
        println!(
            "{f:>7} | {:>11.4} | {:>10.4} | {:>10.2e} | {:>9.4}",
            mean_in[f], std_in[f], mean_out[f], std_out[f]
        );
    }
    println!("(std is torch.std's unbiased one: sqrt(32/31) = 1.0160 for unit variance)");

    // 2. Training versus evaluation mode on a fresh layer.
    let fresh = BatchNormConfig::new_1d(FEATURES).init(&device);
    let train_mean = fresh.forward(x.clone()).mean().into_scalar::<f32>();
    let eval_mean = fresh
        .valid()
        .forward(x.clone().inner())
        .mean()
        .into_scalar::<f32>();
    println!("\n2. the same batch through a fresh layer, after one training step");
    println!("mean output in training mode:   {train_mean:>8.4} (batch statistics)");
    println!(
        "mean output in evaluation mode: {eval_mean:>8.4} (running statistics, one step from mean 0, var 1)"
    );

    // 3. What the layer learns, and what it only tracks.
    println!("\n3. parameters and buffers of BatchNorm1d(5) after one training step");
    let tensors = named_tensors(&fresh);
    for entry in &tensors {
        println!("{:<20} {:<10} {}", entry.name, entry.kind, entry.detail);
    }

    // 4. The composed (textbook) and fused paths.
    let diffs = compare_paths(&x, &device);
    println!("\n4. composed path (plain tensor ops) against the fused path (one-node training op)");
    for (what, diff) in &diffs {
        println!("max |composed - fused| {what:<16} {diff:.2e}");
    }
    let agree = diffs.iter().all(|(_, d)| *d <= PATH_TOLERANCE);
    println!(
        "agree to {PATH_TOLERANCE:e}: {}",
        if agree { "yes" } else { "NO" }
    );

    let numbers = json!({
        "seed": args.seed,
        "input": {"mean": mean_in, "std": std_in},
        "output_train_mode": {"mean": mean_out, "std": std_out},
        "fresh_layer_mean_output": {"train": train_mean, "eval": eval_mean},
        "tensors": tensors.iter().map(|t| json!({"name": t.name, "kind": t.kind, "detail": t.detail})).collect::<Vec<_>>(),
        "composed_vs_fused_max_abs_diff": diffs.iter().map(|(w, d)| (w.to_string(), json!(d))).collect::<serde_json::Map<_, _>>(),
        "paths_agree_to_1e-6": agree,
    });
    println!();
    write_outputs(
        &args.artifact_dir,
        "basics",
        "BatchNorm1d(5) on randn(32,5)*10+5",
        &figure([&mean_in, &std_in, &mean_out, &std_out]),
        &numbers,
    )?;
    if agree {
        Ok(())
    } else {
        Err("the composed and fused paths disagree".into())
    }
}

fn column_means(x: &Tensor<2>) -> Vec<f32> {
    to_vec(x.clone().mean_dim(0))
}

/// Per-column standard deviation with Bessel's correction, as `torch.std`.
fn column_stds(x: &Tensor<2>) -> Vec<f32> {
    to_vec(x.clone().var(0).sqrt())
}

fn to_vec<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data")
}

/// A tensor of the layer, as `named_parameters()` and `named_buffers()` would list it.
struct NamedTensor {
    name: String,
    kind: &'static str,
    detail: String,
}

fn named_tensors(bn: &BatchNorm) -> Vec<NamedTensor> {
    #[derive(Default)]
    struct Lister {
        path: Vec<String>,
        found: Vec<NamedTensor>,
    }
    impl ModuleVisitor for Lister {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let trainable = param.is_require_grad();
            self.found.push(NamedTensor {
                name: self.path.join("."),
                kind: if trainable { "parameter" } else { "buffer" },
                detail: format!(
                    "shape {:?}{}, values {:.3?}",
                    param.dims(),
                    if trainable { ", requires grad" } else { "" },
                    to_vec(param.val().inner())
                ),
            });
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            let count: Vec<i64> = param
                .val()
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .unwrap();
            self.found.push(NamedTensor {
                name: self.path.join("."),
                kind: "buffer",
                detail: format!("integer, value {count:?}"),
            });
        }
    }
    let mut lister = Lister::default();
    bn.visit(&mut lister);
    lister.found
}

/// Max differences between the two paths: output, input gradient, running mean and variance.
fn compare_paths(x: &Tensor<2>, device: &Device) -> Vec<(&'static str, f32)> {
    let upstream = Tensor::<2>::random([BATCH, FEATURES], Distribution::Normal(0.0, 1.0), device);
    let run = |path: ComputePath| {
        let bn = BatchNormConfig::new_1d(FEATURES)
            .with_path(path)
            .init(device);
        let x = x.clone().detach().require_grad();
        let y = bn.forward(x.clone());
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let dx = x.grad(&grads).expect("x requires grad");
        let (mean, var) = bn.running_stats().expect("tracks running stats");
        [
            to_vec(y.inner()),
            to_vec(dx),
            to_vec(mean.inner()),
            to_vec(var.inner()),
        ]
    };
    let (composed, fused) = (run(ComputePath::Composed), run(ComputePath::Fused));
    ["output", "input gradient", "running mean", "running var"]
        .into_iter()
        .zip(composed.iter().zip(&fused))
        .map(|(what, (a, b))| {
            let diff = a
                .iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            (what, diff)
        })
        .collect()
}

fn figure([mean_in, std_in, mean_out, std_out]: [&Vec<f32>; 4]) -> [Panel; 2] {
    let by_feature = |values: &Vec<f32>| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(f, v)| (f as f64, *v as f64))
            .collect()
    };
    [
        Panel::new(
            "feature",
            "mean",
            vec![
                Line::new("before BN", by_feature(mean_in)),
                Line::new("after BN (train mode)", by_feature(mean_out)),
            ],
        ),
        Panel::new(
            "feature",
            "standard deviation",
            vec![
                Line::new("before BN", by_feature(std_in)),
                Line::new("after BN (train mode)", by_feature(std_out)),
            ],
        ),
    ]
}
