//! Shared by `kernels.rs` (f32) and `kernels_f64.rs` (f64; the float dtype is set per
//! process): the flex kernels (the fused path) against the composed path, the textbook
//! algorithm in Burn's tensor ops differentiated op by op, on the shapes and inputs where
//! kernels go wrong: one channel, one position, two samples, a transposed (non-contiguous)
//! input, and large means with tiny spreads. Outputs, input gradients and γ/β gradients of
//! `sum(y · dy)` are compared, and BatchNorm's running statistics. BatchNormAct's composed
//! path is BatchNorm's followed by Burn's own sigmoid or ReLU.

use bn_layers::{
    Activation, BatchNormActConfig, BatchNormConfig, ComputePath, GroupNormConfig,
    InstanceNormConfig, LayerNormConfig,
};
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

/// What a layer computed for one input: output and gradients, then running statistics.
type Results = Vec<Vec<f64>>;

/// Deterministic values `offset + spread · u`, `u` in [-1, 1).
pub fn values(len: usize, seed: u64, offset: f64, spread: f64) -> Vec<f64> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            offset + spread * (2.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
        })
        .collect()
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Runs `forward` on `x` (transposed first when `transpose`) and returns the output, the
/// gradients of `sum(y · dy)` for `x` and the given parameters.
fn run<const D: usize>(
    x: &[f64],
    shape: [usize; D],
    transpose: bool,
    device: &Device,
    params: &[&Param<Tensor<1>>],
    forward: impl Fn(Tensor<D>) -> Tensor<D>,
) -> Results {
    // Transposed: the values are stored as the last two axes swapped, and the layer sees a
    // swapped (non-contiguous) view of them with the logical shape `shape`.
    let mut stored = shape;
    if transpose {
        stored.swap(D - 2, D - 1);
    }
    let x = Tensor::<D>::from_data(TensorData::new(x.to_vec(), stored), device).require_grad();
    let input = match transpose {
        true => x.clone().swap_dims(D - 2, D - 1),
        false => x.clone(),
    };
    let y = forward(input);
    let dy = Tensor::<D>::from_data(
        TensorData::new(values(x.shape().num_elements(), 99, 0.0, 1.0), shape),
        device,
    );
    let grads = (y.clone() * dy).sum().backward();
    let mut out = vec![host(y), x.grad(&grads).map(host).expect("x has a gradient")];
    out.extend(
        params
            .iter()
            .map(|p| p.grad(&grads).map(host).expect("a parameter gradient")),
    );
    out
}

#[track_caller]
fn assert_agree(fused: &Results, composed: &Results, tol: f64, what: &str) {
    for (q, (a, b)) in fused.iter().zip(composed).enumerate() {
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}: quantity {q} index {i}: fused {x} vs composed {y}"
            );
        }
    }
}

/// The odd inputs: `(label, offset, spread)`.
const INPUTS: [(&str, f64, f64); 3] = [
    ("unit", 0.5, 2.0),
    ("large mean", 1e4, 1.0),
    ("tiny spread", 3.0, 1e-3),
];

/// Agreement expected between the paths, relative to each quantity's largest value: f64
/// agrees to rounding; in f32 the composed path rounds `x - mean` (and its sums) in f32,
/// which costs digits where the mean is large against the spread.
fn tolerance(device: &Device, offset: f64, spread: f64) -> f64 {
    let f64_device = Tensor::<1>::zeros([1], device).dtype() == burn::tensor::DType::F64;
    match (f64_device, offset / spread > 100.0) {
        (true, _) => 1e-9,
        (false, false) => 2e-4,
        (false, true) => 5e-3,
    }
}

fn batch_norm_case<const D: usize>(shape: [usize; D], transpose: bool, device: &Device) {
    for (label, offset, spread) in INPUTS {
        let x = values(shape.iter().product(), 1, offset, spread);
        let mut results = Vec::new();
        for path in [ComputePath::Fused, ComputePath::Composed] {
            let bn = BatchNormConfig::new(shape[1]).with_path(path).init(device);
            let params = [bn.gamma.as_ref().unwrap(), bn.beta.as_ref().unwrap()];
            let mut train = run(&x, shape, transpose, device, &params, |x| bn.forward(x));
            let (mean, var) = bn.running_stats().unwrap();
            train.extend([host(mean), host(var)]);
            // Evaluation with the running statistics, gradients on (the autodiff device stays).
            let eval = bn_layers::set_training(bn.clone(), false);
            let params = [eval.gamma.as_ref().unwrap(), eval.beta.as_ref().unwrap()];
            train.extend(run(&x, shape, transpose, device, &params, |x| {
                eval.forward(x)
            }));
            results.push(train);
        }
        let what = format!("BatchNorm {shape:?} transposed={transpose} {label}");
        let tol = tolerance(device, offset, spread);
        assert_agree(&results[0], &results[1], tol, &what);
    }
}

fn batch_norm_act_case<const D: usize>(shape: [usize; D], transpose: bool, device: &Device) {
    let c = shape[1];
    let param = |values: Vec<f64>| {
        Param::from_tensor(Tensor::<1>::from_data(TensorData::new(values, [c]), device))
    };
    for activation in [Activation::Sigmoid, Activation::Relu] {
        for (label, offset, spread) in INPUTS {
            let x = values(shape.iter().product(), 4, offset, spread);
            let mut results = Vec::new();
            for path in [ComputePath::Fused, ComputePath::Composed] {
                let norm = BatchNormConfig::new(c).with_path(path);
                let mut layer = BatchNormActConfig::new(norm)
                    .with_activation(activation)
                    .init(device);
                // Scales of both signs and up to 2.5, so the sigmoid reaches its flat tails.
                layer.norm.gamma = Some(param(values(c, 5, 0.5, 2.0)));
                layer.norm.beta = Some(param(values(c, 6, 0.0, 1.0)));
                let bn = &layer.norm;
                let params = [bn.gamma.as_ref().unwrap(), bn.beta.as_ref().unwrap()];
                let mut train = run(&x, shape, transpose, device, &params, |x| layer.forward(x));
                let (mean, var) = bn.running_stats().unwrap();
                train.extend([host(mean), host(var)]);
                let eval = bn_layers::set_training(layer.clone(), false);
                let bn = &eval.norm;
                let params = [bn.gamma.as_ref().unwrap(), bn.beta.as_ref().unwrap()];
                train.extend(run(&x, shape, transpose, device, &params, |x| {
                    eval.forward(x)
                }));
                results.push(train);
            }
            let what =
                format!("BatchNormAct({activation}) {shape:?} transposed={transpose} {label}");
            let tol = tolerance(device, offset, spread);
            assert_agree(&results[0], &results[1], tol, &what);
        }
    }
}

fn group_norm_case<const D: usize>(
    shape: [usize; D],
    groups: usize,
    transpose: bool,
    device: &Device,
) {
    for (label, offset, spread) in INPUTS {
        let x = values(shape.iter().product(), 2, offset, spread);
        let results: Vec<Results> = [ComputePath::Fused, ComputePath::Composed]
            .into_iter()
            .map(|path| {
                let gn = GroupNormConfig::new(groups, shape[1])
                    .with_path(path)
                    .init(device);
                let params = [gn.gamma.as_ref().unwrap(), gn.beta.as_ref().unwrap()];
                run(&x, shape, transpose, device, &params, |x| gn.forward(x))
            })
            .collect();
        let what = format!("GroupNorm({groups}) {shape:?} transposed={transpose} {label}");
        assert_agree(
            &results[0],
            &results[1],
            tolerance(device, offset, spread),
            &what,
        );
    }
}

/// BatchNorm (training, then evaluation) on odd shapes, transposed or not.
pub fn batch_norm_kernels_match(device: &Device) {
    batch_norm_case([2, 1], false, device); // N = 2, C = 1, S = 1
    batch_norm_case([2, 3], true, device);
    batch_norm_case([3, 1, 5], false, device);
    batch_norm_case([2, 3, 7, 5], true, device);
    batch_norm_case([2, 2, 3, 1, 4], false, device);
}

/// BatchNormAct with each activation (training, then evaluation), on odd shapes and on one
/// that spans several rayon tasks.
pub fn batch_norm_act_kernels_match(device: &Device) {
    batch_norm_act_case([2, 3], true, device);
    batch_norm_act_case([3, 2, 5], false, device);
    batch_norm_act_case([2, 3, 7, 5], true, device);
    batch_norm_act_case([40, 3, 24, 24], false, device);
}

/// GroupNorm from one group to one channel per group, one position per group included.
pub fn group_norm_kernels_match(device: &Device) {
    group_norm_case([2, 1, 3], 1, false, device);
    group_norm_case([2, 4, 5], 2, true, device);
    group_norm_case([3, 6, 2, 3], 3, true, device);
    group_norm_case([2, 4, 1, 1], 4, false, device);
}

/// LayerNorm over two trailing axes and InstanceNorm with affine, on a transposed input.
pub fn layer_norm_and_instance_norm_kernels_match(device: &Device) {
    for (label, offset, spread) in INPUTS {
        let x = values(2 * 3 * 7, 3, offset, spread);
        let ln: Vec<Results> = [ComputePath::Fused, ComputePath::Composed]
            .into_iter()
            .map(|path| {
                let ln = LayerNormConfig::new(vec![3, 7])
                    .with_path(path)
                    .init(device);
                let params = [ln.gamma.as_ref().unwrap(), ln.beta.as_ref().unwrap()];
                run(&x, [2, 3, 7], true, device, &params, |x| ln.forward(x))
            })
            .collect();
        let tol = tolerance(device, offset, spread);
        assert_agree(&ln[0], &ln[1], tol, &format!("LayerNorm {label}"));
        let inorm: Vec<Results> = [ComputePath::Fused, ComputePath::Composed]
            .into_iter()
            .map(|path| {
                let layer = InstanceNormConfig::new_1d(3)
                    .with_affine(true)
                    .with_path(path)
                    .init(device);
                let params = [layer.gamma.as_ref().unwrap(), layer.beta.as_ref().unwrap()];
                run(&x, [2, 3, 7], true, device, &params, |x| layer.forward(x))
            })
            .collect();
        assert_agree(&inorm[0], &inorm[1], tol, &format!("InstanceNorm {label}"));
    }
}

/// LayerNorm over more rows than one axis of a GPU grid holds (65,535 cubes per axis on
/// wgpu: the kernels spread their one cube per row over the grid's other axes): the fused
/// path on `device` against the composed path on `reference` (flex; Burn 0.22.1's wgpu
/// reductions go wrong over 70,000 rows, so its composed path cannot be the reference).
pub fn layer_norm_over_many_rows_matches(device: &Device, reference: &Device) {
    let shape = [70_000, 3];
    let x = values(shape.iter().product(), 4, 0.5, 2.0);
    let results: Vec<Results> = [
        (ComputePath::Fused, device),
        (ComputePath::Composed, reference),
    ]
    .into_iter()
    .map(|(path, device)| {
        let ln = LayerNormConfig::new(vec![3]).with_path(path).init(device);
        let params = [ln.gamma.as_ref().unwrap(), ln.beta.as_ref().unwrap()];
        run(&x, shape, false, device, &params, |x| ln.forward(x))
    })
    .collect();
    let tol = tolerance(device, 0.5, 2.0);
    assert_agree(&results[0], &results[1], tol, "LayerNorm over 70,000 rows");
}
