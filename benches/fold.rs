//! Inference with BatchNorm against the same network with BatchNorm folded into the layer
//! before it (`FoldBatchNorm`), for BN-LeNet and the MLP, at batch 1 and 256, on flex.
//!
//! ```text
//! cargo bench --features wgpu,ndarray --bench fold
//! ```
//! (The same feature set as the tests reuses their build of Burn.)

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use bn_models::{BnLeNetConfig, Classify, FoldBatchNorm, MlpWithBnConfig};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn bench_pair<M: Classify<Input = Tensor<4>> + FoldBatchNorm>(
    c: &mut Criterion,
    name: &str,
    model: M,
) {
    let device = Device::flex();
    let folded = model
        .fold_batchnorm()
        .expect("an evaluation-mode BatchNorm model folds");
    let mut group = c.benchmark_group(format!("{name} inference"));
    for batch in [1, 256] {
        let images = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Default, &device);
        group.bench_with_input(
            BenchmarkId::new("with BatchNorm", batch),
            &images,
            |b, x| b.iter(|| model.classify(x.clone()).into_data()),
        );
        group.bench_with_input(BenchmarkId::new("folded", batch), &images, |b, x| {
            b.iter(|| folded.classify(x.clone()).into_data())
        });
    }
    group.finish();
}

fn fold(c: &mut Criterion) {
    // Built on a plain device, the models start in evaluation mode.
    let device = Device::flex();
    bench_pair(c, "BN-LeNet", BnLeNetConfig::new().init(&device));
    bench_pair(c, "MLP", MlpWithBnConfig::new().init(&device));
}

criterion_group!(benches, fold);
criterion_main!(benches);
