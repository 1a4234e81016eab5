//! The LeNet's convolutions and poolings on flex, fwd+bwd at the main job's shapes (batch
//! 128), through `bn_models::kernels` and through Burn's own modules, in a plain `main`
//! (system allocator, burn's default features). This is the measurement behind keeping the
//! kernels (`docs/performance.md`).
//!
//! ```text
//! cargo bench --bench lenet_ops
//! ```
//! Each line is the lowest of 5 trial medians (a trial: at least 20 steps and 0.3 s) of
//! `y = op(x)` then `(y · dy).sum().backward()`, the two implementations alternating.

// A benchmark binary: its items are not a public API.
#![allow(missing_docs)]

use std::time::Instant;

use bn_models::kernels::{avg_pool_2x2, conv2d};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::AvgPool2dConfig;
use burn::tensor::{Device, Distribution, Tensor};

/// Milliseconds of one step of `op` on `x`: the forward, then the backward when `backward`.
fn step(x: &Tensor<4>, op: &impl Fn(Tensor<4>) -> Tensor<4>, backward: bool) -> f64 {
    let start = Instant::now();
    let y = op(x.clone());
    if backward {
        let dy = y.ones_like();
        let _grads = (y * dy).sum().backward();
    }
    start.elapsed().as_secs_f64() * 1e3
}

/// The lowest of 5 trial medians of `step`.
fn time(x: &Tensor<4>, op: impl Fn(Tensor<4>) -> Tensor<4>, backward: bool) -> f64 {
    (0..5)
        .map(|_| {
            let (mut times, started) = (Vec::new(), Instant::now());
            while times.len() < 20 || started.elapsed().as_secs_f64() < 0.3 {
                times.push(step(x, &op, backward));
            }
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let device = Device::flex().autodiff();
    let input = |shape: [usize; 4], track: bool| {
        let x = Tensor::<4>::random(shape, Distribution::Default, &device);
        if track { x.require_grad() } else { x }
    };
    let conv = |ci, co| -> Conv2d { Conv2dConfig::new([ci, co], [5, 5]).init(&device) };
    let (conv1, conv2) = (conv(1, 6), conv(6, 16));
    let pool = AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    // glibc serves a large buffer with a fresh mmap (page faults on first touch) until a
    // freed one raises its threshold; whichever implementation ran first would pay that.
    // One step of every op first leaves the allocator as the main job does.
    let warm_up = |shape: [usize; 4], track: bool, op: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        step(&input(shape, track), &op, true);
    };
    warm_up([128, 1, 28, 28], false, &|x| conv1.forward(x));
    warm_up([128, 6, 12, 12], true, &|x| conv2.forward(x));
    warm_up([128, 6, 24, 24], true, &|x| pool.forward(x));
    println!("op (batch 128)\tpass\tbn_models::kernels ms\tBurn's module ms\tratio");
    let report = |label: &str,
                  x: &Tensor<4>,
                  ours: &dyn Fn(Tensor<4>) -> Tensor<4>,
                  burn: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        for (pass, backward) in [("fwd", false), ("fwd+bwd", true)] {
            let (ours, burn) = (time(x, ours, backward), time(x, burn, backward));
            println!("{label}\t{pass}\t{ours:.3}\t{burn:.3}\t{:.2}", ours / burn);
        }
    };
    let x = input([128, 1, 28, 28], false); // the images: no input gradient
    report(
        "conv1 6@5x5 on [128,1,28,28]",
        &x,
        &|x| conv2d(&conv1, x),
        &|x| conv1.forward(x),
    );
    let x = input([128, 6, 12, 12], true);
    report(
        "conv2 16@5x5 on [128,6,12,12]",
        &x,
        &|x| conv2d(&conv2, x),
        &|x| conv2.forward(x),
    );
    for shape in [[128, 6, 24, 24], [128, 16, 8, 8]] {
        let x = input(shape, true);
        report(
            &format!("avg pool 2x2 on {shape:?}"),
            &x,
            &avg_pool_2x2,
            &|x| pool.forward(x),
        );
    }
}
