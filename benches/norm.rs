//! The normalization layers at the shapes of `benches/bench_norm.py` (PyTorch's CPU
//! micro-benchmarks), on flex, under criterion: our fused and composed paths and burn-nn's layer of the same
//! kind, in training forward, training forward+backward and (BatchNorm) evaluation forward.
//!
//! ```text
//! cargo bench --features wgpu,ndarray --bench norm
//! python3 benches/performance_report.py      # this, PyTorch's script, and docs/performance.md
//! ```
//! Criterion ids are `norm/<layer> <shape>/<mode>/<implementation>`.
//!
//! Criterion's process keeps glibc's raised mmap and trim thresholds, so it hides the page
//! faults a user's binary pays on fresh multi-MB buffers (`docs/performance.md`): compare our
//! paths and burn-nn here, and time against PyTorch with `benches/norm_plain.rs`.
//!
//! Forward+backward ends in `(y · dy).sum().backward()`: Burn's backward starts from a scalar,
//! where PyTorch's `y.backward(dy)` takes `dy` directly, so ours also pays one elementwise
//! product and one sum over the output (about two extra reads of it). The training forward is
//! timed alone, with autodiff recording (PyTorch's `fwd_autograd`).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bn_layers::{
    BatchNormConfig, ComputePath, GroupNormConfig, InstanceNormConfig, LayerNormConfig,
};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

/// A layer as a pair of closures over 4-D or 2-D inputs.
trait Layer<const D: usize> {
    fn forward(&self, x: Tensor<D>) -> Tensor<D>;
}

impl<const D: usize, F: Fn(Tensor<D>) -> Tensor<D>> Layer<D> for F {
    fn forward(&self, x: Tensor<D>) -> Tensor<D> {
        self(x)
    }
}

/// Runs `f` and waits for the device, so lazy work is inside the measured time.
fn timed<T>(device: &Device, f: impl FnOnce() -> T) -> T {
    let out = f();
    device.sync().expect("the device runs");
    out
}

fn bench_modes<const D: usize>(
    c: &mut Criterion,
    case: &str,
    shape: [usize; D],
    implementations: &[(&str, &dyn Layer<D>, &dyn Layer<D>)],
) {
    let train = Device::flex().autodiff();
    let eval = Device::flex();
    let x = Tensor::<D>::random(shape, Distribution::Default, &train);
    let dy = Tensor::<D>::random(shape, Distribution::Default, &train);
    let x_eval = Tensor::<D>::random(shape, Distribution::Default, &eval);
    let mut group = c.benchmark_group(format!("norm/{case}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for &(name, train_layer, eval_layer) in implementations {
        // Only the forward is timed; the backward after it (untimed) releases the autodiff
        // graph, which a forward-only loop would pile up in Burn's graph store.
        group.bench_function(format!("train_fwd/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let y = timed(&train, || train_layer.forward(x.clone().require_grad()));
                    total += started.elapsed();
                    (y * dy.clone()).sum().backward();
                }
                total
            })
        });
        group.bench_function(format!("train_fwd_bwd/{name}"), |b| {
            b.iter(|| {
                timed(&train, || {
                    let y = train_layer.forward(x.clone().require_grad());
                    (y * dy.clone()).sum().backward()
                })
            })
        });
        group.bench_function(format!("eval_fwd/{name}"), |b| {
            b.iter(|| timed(&eval, || eval_layer.forward(x_eval.clone())))
        });
    }
    group.finish();
}

fn batch_norm<const D: usize>(c: &mut Criterion, channels: usize, shape: [usize; D]) {
    let train = Device::flex().autodiff();
    let ours = |path| BatchNormConfig::new(channels).with_path(path).init(&train);
    let fused = ours(ComputePath::Fused);
    let composed = ours(ComputePath::Composed);
    let burn_nn = burn::nn::BatchNormConfig::new(channels).init(&train);
    let (fused_eval, composed_eval) = (fused.valid(), composed.valid());
    let burn_eval = burn_nn.valid();
    let kind = match D {
        2 | 3 => "1d",
        4 => "2d",
        _ => "3d",
    };
    bench_modes(
        c,
        &format!("BatchNorm{kind}({channels}) {shape:?}"),
        shape,
        &[
            ("fused", &|x: Tensor<D>| fused.forward(x), &|x: Tensor<
                D,
            >| {
                fused_eval.forward(x)
            }),
            (
                "composed",
                &|x: Tensor<D>| composed.forward(x),
                &|x: Tensor<D>| composed_eval.forward(x),
            ),
            (
                "burn-nn",
                &|x: Tensor<D>| burn_nn.forward(x),
                &|x: Tensor<D>| burn_eval.forward(x),
            ),
        ],
    );
}

fn layer_norm(c: &mut Criterion) {
    type T = Tensor<2>;
    let train = Device::flex().autodiff();
    let ours = |path| LayerNormConfig::new(vec![256]).with_path(path).init(&train);
    let fused = ours(ComputePath::Fused);
    let composed = ours(ComputePath::Composed);
    let burn_nn = burn::nn::LayerNormConfig::new(256).init(&train);
    let (fused_eval, composed_eval, burn_eval) = (fused.valid(), composed.valid(), burn_nn.valid());
    bench_modes(
        c,
        "LayerNorm(256) [4096, 256]",
        [4096, 256],
        &[
            ("fused", &|x: T| fused.forward(x), &|x: T| {
                fused_eval.forward(x)
            }),
            ("composed", &|x: T| composed.forward(x), &|x: T| {
                composed_eval.forward(x)
            }),
            ("burn-nn", &|x: T| burn_nn.forward(x), &|x: T| {
                burn_eval.forward(x)
            }),
        ],
    );
}

fn group_norm(c: &mut Criterion) {
    type T = Tensor<4>;
    let train = Device::flex().autodiff();
    let ours = |path| GroupNormConfig::new(8, 64).with_path(path).init(&train);
    let fused = ours(ComputePath::Fused);
    let composed = ours(ComputePath::Composed);
    let burn_nn = burn::nn::GroupNormConfig::new(8, 64).init(&train);
    let (fused_eval, composed_eval, burn_eval) = (fused.valid(), composed.valid(), burn_nn.valid());
    bench_modes(
        c,
        "GroupNorm(8,64) [64, 64, 32, 32]",
        [64, 64, 32, 32],
        &[
            ("fused", &|x: T| fused.forward(x), &|x: T| {
                fused_eval.forward(x)
            }),
            ("composed", &|x: T| composed.forward(x), &|x: T| {
                composed_eval.forward(x)
            }),
            ("burn-nn", &|x: T| burn_nn.forward(x), &|x: T| {
                burn_eval.forward(x)
            }),
        ],
    );
}

fn instance_norm(c: &mut Criterion) {
    type T = Tensor<4>;
    let train = Device::flex().autodiff();
    let ours = |path| {
        InstanceNormConfig::new_2d(64)
            .with_affine(true)
            .with_path(path)
            .init(&train)
    };
    let fused = ours(ComputePath::Fused);
    let composed = ours(ComputePath::Composed);
    let burn_nn = burn::nn::InstanceNormConfig::new(64).init(&train);
    let (fused_eval, composed_eval, burn_eval) = (fused.valid(), composed.valid(), burn_nn.valid());
    bench_modes(
        c,
        "InstanceNorm2d(64, affine) [32, 64, 32, 32]",
        [32, 64, 32, 32],
        &[
            ("fused", &|x: T| fused.forward(x), &|x: T| {
                fused_eval.forward(x)
            }),
            ("composed", &|x: T| composed.forward(x), &|x: T| {
                composed_eval.forward(x)
            }),
            ("burn-nn", &|x: T| burn_nn.forward(x), &|x: T| {
                burn_eval.forward(x)
            }),
        ],
    );
}

fn norm(c: &mut Criterion) {
    batch_norm(c, 6, [128, 6, 24, 24]);
    batch_norm(c, 16, [128, 16, 8, 8]);
    batch_norm(c, 64, [256, 64, 32, 32]);
    batch_norm(c, 16, [8, 16, 16, 32, 32]);
    layer_norm(c);
    group_norm(c);
    instance_norm(c);
    batch_norm(c, 256, [128, 256]);
    batch_norm(c, 120, [128, 120]);
}

criterion_group!(benches, norm);
criterion_main!(benches);
