//! `BatchRenorm` and `GhostBatchNorm` against NumPy references of the papers' equations:
//! `tests/data/renorm_ghost.json`, written by `scripts/gen_renorm_ghost.py` (Batch
//! Renormalization's Algorithm 1 with its warm-up of `r_max` and `d_max`; Ghost Batch
//! Normalization's Algorithm 1 with sequential running-statistics updates), whose closed-form
//! gradients the script checks against finite differences. Every training step's output,
//! gradients of `sum(output · upstream)` and running statistics, then one evaluation step, on
//! flex in float64 and float32.

use bn_layers::{
    BatchNormConfig, BatchRenorm, BatchRenormConfig, GhostBatchNorm, GhostBatchNormConfig,
};
use burn::module::{Module, Param};
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/renorm_ghost.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn shape(t: &Value) -> Vec<usize> {
    t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn values(t: &Value) -> Vec<f64> {
    t["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn tensor<const D: usize>(t: &Value, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values(t), shape(t)), device)
}

#[track_caller]
fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: &Value, tol: f64) {
    let got: Vec<f64> = got.into_data().iter::<f64>().collect();
    let want = values(want);
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} here, {w} in the NumPy reference"
        );
    }
}

/// The layer's `gamma` and `beta` replaced by the case's.
fn affine(case: &Value, device: &Device) -> (Option<Param<Tensor<1>>>, Option<Param<Tensor<1>>>) {
    (
        Some(Param::from_tensor(tensor(&case["gamma"], device))),
        Some(Param::from_tensor(tensor(&case["beta"], device))),
    )
}

fn renorm(case: &Value, device: &Device) -> BatchRenorm {
    let cfg = &case["config"];
    let f = |key: &str| cfg[key].as_f64().unwrap();
    let u = |key: &str| cfg[key].as_u64().unwrap() as usize;
    let c = shape(&case["gamma"])[0];
    let mut layer = BatchRenormConfig::new(c)
        .with_eps(f("eps"))
        .with_momentum(f("momentum"))
        .with_r_max(f("r_max"))
        .with_d_max(f("d_max"))
        .with_warmup_steps(u("warmup_steps"))
        .with_r_max_steps(u("r_max_steps"))
        .with_d_max_steps(u("d_max_steps"))
        .init(device);
    (layer.gamma, layer.beta) = affine(case, device);
    layer
}

fn ghost(case: &Value, device: &Device) -> GhostBatchNorm {
    let cfg = &case["config"];
    let c = shape(&case["gamma"])[0];
    let norm = BatchNormConfig::new(c)
        .with_eps(cfg["eps"].as_f64().unwrap())
        .with_momentum(Some(cfg["momentum"].as_f64().unwrap()));
    let virtual_batch_size = cfg["virtual_batch_size"].as_u64().unwrap() as usize;
    let mut layer = GhostBatchNormConfig::new(norm, virtual_batch_size).init(device);
    (layer.norm.gamma, layer.norm.beta) = affine(case, device);
    layer
}

/// The two layers behind one interface: forward, the affine parameters, the statistics.
trait Layer: Module {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
    fn gamma_beta(&self) -> (&Param<Tensor<1>>, &Param<Tensor<1>>);
    fn check_running(&self, step: &Value, tol: f64);
}

impl Layer for BatchRenorm {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward(x)
    }
    fn gamma_beta(&self) -> (&Param<Tensor<1>>, &Param<Tensor<1>>) {
        (self.gamma.as_ref().unwrap(), self.beta.as_ref().unwrap())
    }
    fn check_running(&self, step: &Value, tol: f64) {
        let (mean, std) = self.running_stats();
        assert_close("running_mean", mean, &step["running_mean"], tol);
        assert_close("running_std", std, &step["running_std"], tol);
    }
}

impl Layer for GhostBatchNorm {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward(x)
    }
    fn gamma_beta(&self) -> (&Param<Tensor<1>>, &Param<Tensor<1>>) {
        let norm = &self.norm;
        (norm.gamma.as_ref().unwrap(), norm.beta.as_ref().unwrap())
    }
    fn check_running(&self, step: &Value, tol: f64) {
        let (mean, var) = self.norm.running_stats().unwrap();
        assert_close("running_mean", mean, &step["running_mean"], tol);
        assert_close("running_var", var, &step["running_var"], tol);
        let count = step["num_batches_tracked"].as_i64().unwrap();
        assert_eq!(self.norm.num_batches_tracked(), Some(count));
    }
}

/// Every step of `case` on `layer` (built on the autodiff `device`), inputs of rank `D`.
fn run_steps<const D: usize, L: Layer>(
    name: &str,
    layer: L,
    case: &Value,
    device: &Device,
    tol: f64,
) {
    let mut layer = layer;
    for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let what = |field: &str| format!("{name} step {i} {field}");
        if step["mode"] == "eval" {
            layer = layer.valid();
            let x = tensor::<D>(&step["input"], &device.clone().inner());
            assert_close(&what("output"), layer.run(x), &step["output"], tol);
            continue;
        }
        let x = tensor::<D>(&step["input"], device).require_grad();
        let y = layer.run(x.clone());
        let upstream = tensor::<D>(&step["upstream"], device);
        let grads = (y.clone() * upstream).sum().backward();
        assert_close(&what("output"), y, &step["output"], tol);
        assert_close(
            &what("grad_input"),
            x.grad(&grads).unwrap(),
            &step["grad_input"],
            tol,
        );
        let (gamma, beta) = layer.gamma_beta();
        assert_close(
            &what("grad_gamma"),
            gamma.grad(&grads).unwrap(),
            &step["grad_gamma"],
            tol,
        );
        assert_close(
            &what("grad_beta"),
            beta.grad(&grads).unwrap(),
            &step["grad_beta"],
            tol,
        );
        layer.check_running(step, tol);
    }
}

fn run_all(device: Device, tol: f64) {
    let device = device.autodiff();
    let cases = cases();
    assert_eq!(cases.len(), 6);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let rank = shape(&case["steps"][0]["input"]).len();
        match (case["layer"].as_str().unwrap(), rank) {
            ("BatchRenorm", 2) => {
                run_steps::<2, _>(name, renorm(case, &device), case, &device, tol)
            }
            ("BatchRenorm", 4) => {
                run_steps::<4, _>(name, renorm(case, &device), case, &device, tol)
            }
            ("GhostBatchNorm", 2) => {
                run_steps::<2, _>(name, ghost(case, &device), case, &device, tol)
            }
            ("GhostBatchNorm", 4) => {
                run_steps::<4, _>(name, ghost(case, &device), case, &device, tol)
            }
            other => panic!("{name}: no runner for {other:?}"),
        }
    }
}

#[test]
fn batch_renorm_and_ghost_batch_norm_match_numpy_in_f64() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    run_all(device, 1e-9);
}

#[test]
fn batch_renorm_and_ghost_batch_norm_match_numpy_in_f32() {
    run_all(Device::flex(), 2e-4);
}
