//! A user's own Burn project with bn-layers, set up as bn-layers' README says (burn with its
//! default features, bn-layers by path), outside the workspace.
//!
//! It builds a small CNN with BatchNorm, GroupNorm, InstanceNorm and LayerNorm inside its own
//! `#[derive(Module)]`, trains it with burn's Adam to tell horizontal from vertical stripes,
//! evaluates it, saves its record, reloads it into a fresh model and checks that the reloaded
//! model gives the same outputs and running statistics. Any failure exits non-zero.
//!
//! It prints whether bn-layers has kernels for the device and fails unless that is what the
//! build's features promise.
//!
//! ```text
//! cargo run --release -- flex                   # no kernels (bn-layers' defaults): Burn's ops
//! cargo run --release -- wgpu                   # the same on wgpu
//! cargo run --release --features flex -- flex   # bn-layers' CPU kernels
//! cargo run --release --features cube -- wgpu   # bn-layers' CubeCL kernels, under fusion
//! ```

use bn_layers::{
    BatchNorm, BatchNormConfig, ComputePath, GroupNorm, GroupNormConfig, InstanceNorm,
    InstanceNormConfig, LayerNorm, LayerNormConfig, NormError, ReplicaGroup, SyncBatchNorm,
};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};

const SIDE: usize = 8;
const SAMPLES: usize = 64;
const BATCH: usize = 16;
const STEPS: usize = 60;

/// The user's model: two convolutions, each normalization layer of bn-layers, a linear head.
#[derive(Module, Debug)]
struct StripeNet {
    conv1: Conv2d,
    batch_norm: BatchNorm,
    conv2: Conv2d,
    group_norm: GroupNorm,
    instance_norm: InstanceNorm,
    layer_norm: LayerNorm,
    head: Linear,
}

impl StripeNet {
    /// A fresh model whose normalization layers compute through `path`.
    fn new(device: &Device, path: ComputePath) -> Self {
        let conv = |from| {
            Conv2dConfig::new([from, 8], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            conv1: conv(1),
            batch_norm: BatchNormConfig::new_2d(8).with_path(path).init(device),
            conv2: conv(8),
            group_norm: GroupNormConfig::new(2, 8).with_path(path).init(device),
            instance_norm: (InstanceNormConfig::new_2d(8).with_affine(true))
                .with_path(path)
                .init(device),
            layer_norm: LayerNormConfig::new(vec![8]).with_path(path).init(device),
            head: LinearConfig::new(8, 2).init(device),
        }
    }

    /// Class scores `[N, 2]` of images `[N, 1, SIDE, SIDE]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.batch_norm.forward(self.conv1.forward(images)));
        let x = relu(self.group_norm.forward(self.conv2.forward(x)));
        // Each channel's mean over the image is what InstanceNorm removes; its spread stays.
        let x = self.instance_norm.forward(x).powi_scalar(2);
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).flatten(1, 3);
        self.head.forward(self.layer_norm.forward(pooled))
    }
}

/// `SAMPLES` images of stripes, horizontal (label 0) or vertical (label 1).
struct Stripes {
    pixels: Vec<f32>,
    labels: Vec<i64>,
}

impl Stripes {
    /// The images, with a random phase, contrast and noise from a fixed linear congruential
    /// generator.
    fn new() -> Self {
        let mut state = 12345u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for i in 0..SAMPLES {
            let vertical = i % 2 == 1;
            let (phase, contrast) = ((uniform() * 2.0) as usize, 0.5 + uniform());
            for row in 0..SIDE {
                for col in 0..SIDE {
                    let along = if vertical { col } else { row };
                    let on = (along + phase) % 2 == 0;
                    pixels.push(contrast * f32::from(u8::from(on)) + 0.2 * (uniform() - 0.5));
                }
            }
            labels.push(i64::from(vertical));
        }
        Self { pixels, labels }
    }

    /// Images `range` and their labels on `device`.
    fn batch(&self, range: std::ops::Range<usize>, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let per_image = SIDE * SIDE;
        let pixels = self.pixels[range.start * per_image..range.end * per_image].to_vec();
        let labels = self.labels[range.clone()].to_vec();
        (
            Tensor::from_data(
                TensorData::new(pixels, [range.len(), 1, SIDE, SIDE]),
                device,
            ),
            Tensor::from_data(TensorData::new(labels, [range.len()]), device),
        )
    }
}

fn accuracy(scores: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let predicted = scores.argmax(1).squeeze_dim::<1>(1);
    let correct = predicted.equal(labels).int().sum().into_scalar::<i64>();
    correct as f64 / SAMPLES as f64
}

/// The largest difference, relative to the largest value, between bn-layers' two compute
/// paths in one model: of the training scores, of the gradient of the first convolution's
/// weight, and of the evaluation scores after that step (running statistics, the eval ops).
fn paths_gap(data: &Stripes, device: &Device) -> [f64; 3] {
    let fused = StripeNet::new(device, ComputePath::Fused);
    let composed =
        StripeNet::new(device, ComputePath::Composed).load_record(fused.clone().into_record());
    let (images, labels) = data.batch(0..BATCH, device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let step = |model: &StripeNet| {
        let scores = model.forward(images.clone());
        let grads = loss_fn.forward(scores.clone(), labels.clone()).backward();
        let weight_grad = model
            .conv1
            .weight
            .grad(&grads)
            .expect("conv1 takes part in the loss");
        let eval_scores = model.valid().forward(images.clone().inner());
        (
            scores.inner().flatten::<1>(0, 1),
            weight_grad.flatten::<1>(0, 3),
            eval_scores.flatten::<1>(0, 1),
        )
    };
    let (a, b) = (step(&fused), step(&composed));
    [(a.0, b.0), (a.1, b.1), (a.2, b.2)].map(|(a, b)| {
        let scale = a.clone().abs().max().into_scalar::<f64>().max(1e-6);
        (a - b).abs().max().into_scalar::<f64>() / scale
    })
}

/// SyncBatchNorm in a group of one replica: it normalizes where this build has the
/// cross-replica sum for the device's backend (where it has kernels), and otherwise returns
/// a `NormError` saying so.
fn sync_batch_norm(data: &Stripes, device: &Device, kernels: bool) -> Result<(), String> {
    let replica = ReplicaGroup::new(1).member(0);
    let layer = SyncBatchNorm::new(BatchNormConfig::new_2d(8).init(device), replica);
    let (images, _) = data.batch(0..BATCH, device);
    let x = Tensor::cat(vec![images; 8], 1);
    match (layer.try_forward(x).map(|y| y.dims()), kernels) {
        (Ok(dims), true) => println!("SyncBatchNorm on one replica: normalized {dims:?}"),
        (Err(err @ NormError::UnsupportedBackend { .. }), false) => {
            println!("SyncBatchNorm on one replica: {err}")
        }
        (result, _) => return Err(format!("SyncBatchNorm (kernels: {kernels}): {result:?}")),
    }
    Ok(())
}

fn run(device: Device, kernels_expected: bool) -> Result<(), String> {
    let kernels = bn_layers::has_kernels(&device);
    println!(
        "bn-layers kernels for this device: {}",
        if kernels { "yes" } else { "no" }
    );
    if kernels != kernels_expected {
        return Err(format!(
            "has_kernels is {kernels}, but this build's features say {kernels_expected}"
        ));
    }
    device.seed(7);
    let train_device = device.clone().autodiff();
    let data = Stripes::new();
    sync_batch_norm(&data, &train_device, kernels)?;
    let gap = paths_gap(&data, &train_device);
    println!(
        "fused against composed path, largest relative difference: training scores {:.1e}, \
         conv1 weight gradient {:.1e}, evaluation scores {:.1e}",
        gap[0], gap[1], gap[2]
    );
    if !gap.iter().all(|&g| g <= 1e-3) {
        return Err(format!(
            "the fused and composed paths differ by {gap:?} (relative)"
        ));
    }
    let mut model = StripeNet::new(&train_device, ComputePath::Fused);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let first = (step * BATCH) % SAMPLES;
        let (images, labels) = data.batch(first..first + BATCH, &train_device);
        let loss = loss_fn.forward(model.forward(images), labels);
        losses.push(loss.clone().into_scalar::<f64>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    let first: f64 = losses[..4].iter().sum();
    let last: f64 = losses[STEPS - 4..].iter().sum();
    println!(
        "loss: first four steps {:.4}, last four {:.4}",
        first / 4.0,
        last / 4.0
    );
    if last.is_nan() || last >= 0.5 * first {
        return Err(format!("training did not halve the loss: {losses:?}"));
    }
    let tracked = model.batch_norm.num_batches_tracked();
    if tracked != Some(STEPS as i64) {
        return Err(format!(
            "BatchNorm tracked {tracked:?} batches, not {STEPS}"
        ));
    }

    // Evaluation: running statistics, no autodiff (PyTorch's model.eval()).
    let eval = model.valid();
    let (images, labels) = data.batch(0..SAMPLES, &device);
    let scores = eval.forward(images.clone());
    let accuracy = accuracy(scores.clone(), labels);
    println!("evaluation accuracy: {accuracy:.3}");
    if accuracy < 0.95 {
        return Err(format!("evaluation accuracy {accuracy} is below 0.95"));
    }

    // Save the record, reload it into a fresh model, compare.
    let path = std::env::temp_dir().join(format!("bn-downstream-{}.bpk", std::process::id()));
    eval.clone()
        .save_file(&path)
        .map_err(|err| format!("saving {}: {err}", path.display()))?;
    let reloaded = StripeNet::new(&device, ComputePath::Fused)
        .try_load_file(&path)
        .map_err(|err| format!("loading {}: {err}", path.display()))?
        .valid();
    let difference = (reloaded.forward(images) - scores)
        .abs()
        .max()
        .into_scalar::<f64>();
    let stats = |model: &StripeNet| {
        let (mean, var) = model.batch_norm.running_stats()?;
        Some([mean, var].map(|t| t.into_data().try_to_vec::<f32>().ok()))
    };
    let same_stats = reloaded.batch_norm.num_batches_tracked() == tracked
        && stats(&eval).is_some()
        && stats(&reloaded) == stats(&eval);
    println!(
        "reloaded model: largest score difference {difference:e}, same running stats: {same_stats}"
    );
    // Burn reads a loaded record's values from the file when they are first used, so the file
    // stays until the reloaded model has run.
    std::fs::remove_file(&path).map_err(|err| format!("removing {}: {err}", path.display()))?;
    if difference != 0.0 || !same_stats {
        return Err("the reloaded model differs from the saved one".into());
    }
    Ok(())
}

fn main() {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let (device, kernels_expected) = match backend.as_str() {
        "flex" => (Device::flex(), cfg!(feature = "flex")),
        "wgpu" => (
            Device::wgpu(DeviceKind::DefaultDevice),
            cfg!(feature = "cube"),
        ),
        other => {
            eprintln!("error: unknown backend '{other}' (expected flex or wgpu)");
            std::process::exit(2);
        }
    };
    match run(device, kernels_expected) {
        Ok(()) => println!("downstream on {backend}: ok"),
        Err(err) => {
            eprintln!("error: downstream on {backend}: {err}");
            std::process::exit(1);
        }
    }
}
