//! The normalization layers timed the way a user's program runs them: a plain `main` (no
//! benchmark harness), the system allocator, burn with its default features, flex.
//!
//! ```text
//! cargo bench --bench norm_plain -- [--json PATH] [--path fused|composed] [--only TEXT]
//! ```
//! The harness is `benches/bench_norm.py`'s, step for step, so both sides pay the same
//! extra work: `y = layer(x)`, then `(y · dy).sum().backward()`. Modes:
//! - `train_fwd`: the training forward alone, recording autodiff (the backward runs after it
//!   outside the clock, so the graph is released as in training);
//! - `train_fwd_bwd`: forward and backward;
//! - `eval_fwd`: evaluation mode on a plain device (running statistics where the layer has
//!   them).
//!
//! Each time is the lowest of 5 trial medians (a trial: at least 10 steps and 0.3 s), as
//! `bench_norm.py` times PyTorch; each step's minor page faults are read from
//! `/proc/self/stat`.

// A benchmark binary: its items are not a public API.
#![allow(missing_docs)]

use std::fs;
use std::time::Instant;

use bn_layers::{
    BatchNormConfig, ComputePath, GroupNormConfig, InstanceNormConfig, LayerNormConfig,
};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<String>,
    /// The compute path of our layers.
    #[arg(long, default_value = "fused", value_parser = ["fused", "composed"])]
    path: String,
    /// Run only the cases whose label contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
fn minor_faults() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    (after_name.split_whitespace().nth(7))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `step` (which returns the milliseconds that count) as `bench_norm.py` does.
fn time(mut step: impl FnMut() -> f64) -> Value {
    for _ in 0..3 {
        step();
    }
    let (mut best, mut fastest, mut reps, mut faults) = (f64::INFINITY, f64::INFINITY, 0, 0);
    for _ in 0..5 {
        let mut times = Vec::new();
        let started = Instant::now();
        while times.len() < 1000 && (times.len() < 10 || started.elapsed().as_secs_f64() < 0.3) {
            let faults_before = minor_faults();
            times.push(step());
            faults += minor_faults() - faults_before;
        }
        times.sort_by(f64::total_cmp);
        best = f64::min(best, times[times.len() / 2]);
        fastest = f64::min(fastest, times[0]);
        reps += times.len();
    }
    json!({"median_ms": best, "min_ms": fastest, "reps": reps,
           "faults_per_rep": faults as f64 / reps as f64})
}

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// Times one layer in every mode: `train` runs on an autodiff device, `eval` on a plain one.
fn bench_layer<const D: usize>(
    label: &str,
    shape: [usize; D],
    train: impl Fn(Tensor<D>) -> Tensor<D>,
    eval: impl Fn(Tensor<D>) -> Tensor<D>,
) -> Value {
    let device = Device::flex().autodiff();
    let x = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let dy = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let x_eval = x.clone().inner();
    let backward = |y: Tensor<D>| drop((y * dy.clone()).sum().backward());

    let train_fwd = time(|| {
        let started = Instant::now();
        let y = train(x.clone().require_grad());
        let ms = millis(started);
        backward(y);
        ms
    });
    let train_fwd_bwd = time(|| {
        let started = Instant::now();
        backward(train(x.clone().require_grad()));
        millis(started)
    });
    let eval_fwd = time(|| {
        let started = Instant::now();
        drop(eval(x_eval.clone()));
        millis(started)
    });
    let ms = |v: &Value| v["median_ms"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{label:40} train_fwd {:8.3} ms | train_fwd_bwd {:8.3} ms ({:6.0} faults) | eval_fwd {:8.3} ms",
        ms(&train_fwd),
        ms(&train_fwd_bwd),
        train_fwd_bwd["faults_per_rep"].as_f64().unwrap_or(f64::NAN),
        ms(&eval_fwd),
    );
    json!({"label": label, "shape": shape.to_vec(), "numel": shape.iter().product::<usize>(),
           "train_fwd": train_fwd, "train_fwd_bwd": train_fwd_bwd, "eval_fwd": eval_fwd})
}

fn batch_norm<const D: usize>(label: &str, shape: [usize; D], path: ComputePath) -> Value {
    let layer = BatchNormConfig::new(shape[1])
        .with_path(path)
        .init(&Device::flex().autodiff());
    let eval = layer.valid();
    bench_layer(label, shape, |x| layer.forward(x), |x| eval.forward(x))
}

fn main() {
    let args = Args::parse();
    let path = match args.path.as_str() {
        "composed" => ComputePath::Composed,
        _ => ComputePath::Fused,
    };
    let device = Device::flex().autodiff();
    let wanted = |label: &str| args.only.as_deref().is_none_or(|only| label.contains(only));
    let mut results = Vec::new();
    let mut run = |label: &str, bench: &dyn Fn(&str) -> Value| {
        if wanted(label) {
            results.push(bench(label));
        }
    };
    run("BatchNorm2d(6) (128, 6, 24, 24)", &|l| {
        batch_norm(l, [128, 6, 24, 24], path)
    });
    run("BatchNorm2d(16) (128, 16, 8, 8)", &|l| {
        batch_norm(l, [128, 16, 8, 8], path)
    });
    run("BatchNorm2d(64) (256, 64, 32, 32)", &|l| {
        batch_norm(l, [256, 64, 32, 32], path)
    });
    run("BatchNorm3d(16) (8, 16, 16, 32, 32)", &|l| {
        batch_norm(l, [8, 16, 16, 32, 32], path)
    });
    run("BatchNorm1d(256) (128, 256)", &|l| {
        batch_norm(l, [128, 256], path)
    });
    run("BatchNorm1d(120) (128, 120)", &|l| {
        batch_norm(l, [128, 120], path)
    });
    run("LayerNorm(256) (4096, 256)", &|l| {
        let layer = LayerNormConfig::new(vec![256])
            .with_path(path)
            .init(&device);
        let eval = layer.valid();
        bench_layer(l, [4096, 256], |x| layer.forward(x), |x| eval.forward(x))
    });
    run("GroupNorm(8, 64) (64, 64, 32, 32)", &|l| {
        let layer = GroupNormConfig::new(8, 64).with_path(path).init(&device);
        let eval = layer.valid();
        bench_layer(
            l,
            [64, 64, 32, 32],
            |x| layer.forward(x),
            |x| eval.forward(x),
        )
    });
    run("InstanceNorm2d(64, affine) (32, 64, 32, 32)", &|l| {
        let layer = InstanceNormConfig::new_2d(64)
            .with_affine(true)
            .with_path(path)
            .init(&device);
        let eval = layer.valid();
        bench_layer(
            l,
            [32, 64, 32, 32],
            |x| layer.forward(x),
            |x| eval.forward(x),
        )
    });
    let report = json!({
        "implementation": format!("bn-layers {} path, flex", args.path),
        "allocator": "system",
        "threads": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "benches": results,
    });
    if let Some(path) = args.json {
        fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON"))
            .unwrap_or_else(|err| panic!("cannot write {path}: {err}"));
        println!("wrote {path}");
    }
}
