//! A half model: every layer built on a device whose default float is f16, as a Burn user
//! makes a half-precision model (`device.configure(FloatDType::F16)`). Parameters are then
//! f16, running statistics stay f32 (`stats_dtype: None`), and training and evaluation run in
//! f32 inside each layer. The device setting is global to the process, so this file holds
//! one test.

use bn_layers::{
    BatchNormConfig, BatchRenormConfig, FrozenBatchNorm, GhostBatchNormConfig, GroupNormConfig,
    InstanceNormConfig, LayerNormConfig, RmsNormConfig, set_training,
};
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

/// `[N = 4, C = 3]`: sample `i` of channel `c` is `base[c] + i * step[c]`, every value exact
/// in f16. Channel 0's spread, 2^-20, gives an unbiased variance of `5/3 * 2^-40 ≈ 1.5e-12`,
/// far below f16's smallest subnormal (2^-24 ≈ 6e-8): a half `running_var` holds 0 there.
const BASE: [f64; 3] = [0.0, 1.0, -2.0];
const STEP: [f64; 3] = [1.0 / 1_048_576.0, 1.0 / 1024.0, 1.0 / 512.0];

fn input(device: &Device) -> Tensor<2> {
    let values: Vec<f64> = (0..4)
        .flat_map(|i| (0..3).map(move |c| BASE[c] + i as f64 * STEP[c]))
        .collect();
    Tensor::from_data(TensorData::new(values, [4, 3]), (device, DType::F16))
}

fn host(tensor: Tensor<1>) -> Vec<f64> {
    tensor.cast(DType::F64).into_data().try_to_vec().unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], relative: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(f64::MIN_POSITIVE);
        assert!(
            err <= relative,
            "{what}[{i}]: {g}, expected {w} (error {err:.1e})"
        );
    }
}

/// The layer's half output matches its output on the same values in f32, within 1e-2, and
/// keeps the input's dtype.
fn assert_half_agrees_with_f32(what: &str, forward: impl Fn(Tensor<4>) -> Tensor<4>) {
    let x = input(&device()).reshape([2, 3, 2, 1]);
    let half = forward(x.clone());
    assert_eq!(half.dtype(), DType::F16, "{what}");
    let full = forward(x.cast(DType::F32));
    assert_eq!(full.dtype(), DType::F32, "{what}");
    let (half, full) = (half.cast(DType::F64), full.cast(DType::F64));
    let got: Vec<f64> = half.into_data().try_to_vec().unwrap();
    let want: Vec<f64> = full.into_data().try_to_vec().unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-2 * w.abs().max(1.0),
            "{what}[{i}]: {g} in half, {w} in f32"
        );
    }
}

fn device() -> Device {
    Device::flex().autodiff()
}

#[test]
fn a_half_model_keeps_f32_statistics_and_trains_in_f32() {
    let mut flex = Device::flex();
    flex.configure(FloatDType::F16)
        .expect("flex takes f16 as its default float");
    let device = device();

    // BatchNorm1d(3, momentum=None): one training step makes the running statistics the
    // batch's mean and unbiased variance exactly, in f32.
    let bn = BatchNormConfig::new_1d(3).with_momentum(None).init(&device);
    let gamma = bn.gamma.as_ref().unwrap().val();
    assert_eq!(
        gamma.dtype(),
        DType::F16,
        "parameters take the device's dtype"
    );
    let x = input(&device).require_grad();
    let y = bn.forward(x.clone());
    assert_eq!(y.dtype(), DType::F16);
    let grads = y.clone().sum().backward();
    let grad_gamma = bn.gamma.as_ref().unwrap().grad(&grads).unwrap();
    assert_eq!(
        grad_gamma.dtype(),
        DType::F16,
        "a half parameter's gradient is half"
    );
    assert_eq!(x.grad(&grads).unwrap().dtype(), DType::F16);

    let (mean, var) = bn.running_stats().unwrap();
    assert_eq!((mean.dtype(), var.dtype()), (DType::F32, DType::F32));
    // By hand: mean = base + 1.5 step, unbiased variance = step² (2.25 + 0.25 + 0.25 +
    // 2.25) / 3 = 5/3 step².
    let want_mean: Vec<f64> = (0..3).map(|c| BASE[c] + 1.5 * STEP[c]).collect();
    let want_var: Vec<f64> = STEP.iter().map(|s| 5.0 / 3.0 * s * s).collect();
    assert_close("running_mean", &host(mean), &want_mean, 1e-6);
    assert_close("running_var", &host(var), &want_var, 1e-6);

    // The training output by hand: (x - mean) / sqrt(biased variance + eps).
    let got: Vec<f64> = y.cast(DType::F64).into_data().try_to_vec().unwrap();
    for (k, g) in got.iter().enumerate() {
        let (i, c) = (k / 3, k % 3);
        let biased = 1.25 * STEP[c] * STEP[c];
        let want = (i as f64 - 1.5) * STEP[c] / (biased + 1e-5).sqrt();
        assert!(
            (g - want).abs() <= 1e-2 * want.abs().max(1.0),
            "output[{k}]: {g}, expected {want}"
        );
    }

    // Evaluation with those statistics, still half in and out.
    let eval = set_training(bn.clone(), false);
    assert_eq!(eval.forward(input(&device)).dtype(), DType::F16);

    // Asking for half statistics gets burn-nn's behaviour: channel 0's variance underflows.
    let half_stats = BatchNormConfig::new_1d(3)
        .with_momentum(None)
        .with_stats_dtype(Some(FloatDType::F16))
        .init(&device);
    half_stats.forward(input(&device));
    let (_, var) = half_stats.running_stats().unwrap();
    assert_eq!(var.dtype(), DType::F16);
    assert_eq!(host(var)[0], 0.0, "5/3 * 2^-40 is below f16's range");

    // Every layer with statistics keeps them in f32; every layer agrees with its f32 self.
    let bn2 = BatchNormConfig::new_2d(3).init(&device);
    assert_half_agrees_with_f32("BatchNorm", |x| bn2.forward(x));
    assert_eq!(bn2.running_stats().unwrap().1.dtype(), DType::F32);
    let eval = set_training(bn2, false);
    assert_half_agrees_with_f32("BatchNorm (eval)", |x| eval.forward(x));
    let composed = BatchNormConfig::new_2d(3)
        .with_path(bn_layers::ComputePath::Composed)
        .init(&device);
    assert_half_agrees_with_f32("BatchNorm (composed)", |x| composed.forward(x));
    let instance = InstanceNormConfig::new_2d(3)
        .with_affine(true)
        .with_track_running_stats(true)
        .init(&device);
    assert_half_agrees_with_f32("InstanceNorm", |x| instance.forward(x));
    assert_eq!(instance.running_stats().unwrap().0.dtype(), DType::F32);
    let renorm = BatchRenormConfig::new(3).init(&device);
    assert_half_agrees_with_f32("BatchRenorm", |x| renorm.forward(x));
    assert_eq!(renorm.running_mean.value().dtype(), DType::F32);
    let ghost = GhostBatchNormConfig::new(BatchNormConfig::new_2d(3), 1).init(&device);
    assert_half_agrees_with_f32("GhostBatchNorm", |x| ghost.forward(x));
    assert_eq!(ghost.norm.running_stats().unwrap().0.dtype(), DType::F32);
    let frozen = FrozenBatchNorm::from_batch_norm(&eval);
    assert_half_agrees_with_f32("FrozenBatchNorm", |x| frozen.forward(x));
    let group = GroupNormConfig::new(3, 3).init(&device);
    assert_half_agrees_with_f32("GroupNorm", |x| group.forward(x));
    let layer = LayerNormConfig::new(vec![2, 1]).init(&device);
    assert_half_agrees_with_f32("LayerNorm", |x| layer.forward(x));
    let rms = RmsNormConfig::new(vec![2, 1])
        .with_eps(Some(1e-5))
        .init(&device);
    assert_half_agrees_with_f32("RmsNorm", |x| rms.forward(x));
}
