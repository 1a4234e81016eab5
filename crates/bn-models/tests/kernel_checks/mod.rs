//! Shared by `kernels.rs` (f32) and `kernels_f64.rs` (f64; the float dtype is set per
//! process): `bn_models::kernels` on flex against Burn's own modules, `AvgPool2d` (kernel
//! and stride 2) and `Conv2d`, forward and the gradients of `sum(y · dy)`, on odd shapes.

use bn_models::kernels::{avg_pool_2x2, conv2d};
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::AvgPool2dConfig;
use burn::tensor::{Device, Tensor, TensorData};

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            2.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.0
        })
        .collect()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// The input `x` of `shape` (stored with its last two axes swapped when `transpose`, so the
/// op sees a non-contiguous view), tracking its gradient when `track`: `(x, the view)`.
fn input(
    shape: [usize; 4],
    transpose: bool,
    track: bool,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let mut stored = shape;
    if transpose {
        stored.swap(2, 3);
    }
    let len = shape.iter().product();
    let mut x = Tensor::<4>::from_data(TensorData::new(values(len, 1), stored), device);
    if track {
        x = x.require_grad();
    }
    let view = match transpose {
        true => x.clone().swap_dims(2, 3),
        false => x.clone(),
    };
    (x, view)
}

/// `sum(y · dy)` for a fixed `dy` of `y`'s shape, and `y` on the host.
fn objective(y: Tensor<4>, device: &Device) -> (Tensor<1>, Vec<f64>) {
    let dy = Tensor::<4>::from_data(
        TensorData::new(values(y.shape().num_elements(), 2), y.dims()),
        device,
    );
    ((y.clone() * dy).sum(), host(y))
}

/// `(y, dx)` of `pool` on `x` (transposed in its last two axes first, when `transpose`).
fn run(
    shape: [usize; 4],
    transpose: bool,
    device: &Device,
    pool: impl Fn(Tensor<4>) -> Tensor<4>,
) -> (Vec<f64>, Vec<f64>) {
    let (x, view) = input(shape, transpose, true, device);
    let (loss, y) = objective(pool(view), device);
    let grads = loss.backward();
    (y, host(x.grad(&grads).expect("x has a gradient")))
}

/// `|ours - burn| <= tol` relative to Burn's largest value (at least 1).
#[track_caller]
fn assert_agree(what: &str, ours: &[f64], burn: &[f64], tol: f64) {
    assert_eq!(ours.len(), burn.len(), "{what}: lengths");
    let scale = burn.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(burn).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what} index {i}: ours {a} vs Burn {b}"
        );
    }
}

/// The pooling kernel and Burn's `AvgPool2d` agree to `tol` on every shape, forward and
/// backward.
pub fn pooling_matches_burn(device: &Device, tol: f64) {
    let burn_pool = AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let shapes = [
        ([1, 1, 2, 2], false),
        ([2, 3, 7, 5], false),
        ([2, 3, 5, 7], true),
        ([3, 2, 1, 4], false),     // one row: nothing to pool
        ([120, 6, 24, 24], false), // several rayon tasks
        ([128, 16, 8, 8], true),
    ];
    for (shape, transpose) in shapes {
        let ours = run(shape, transpose, device, avg_pool_2x2);
        let burn = run(shape, transpose, device, |x| burn_pool.forward(x));
        for (what, a, b) in [("output", &ours.0, &burn.0), ("dx", &ours.1, &burn.1)] {
            let what = format!("pool {what} {shape:?} transposed={transpose}");
            assert_agree(&what, a, b, tol);
        }
    }
}

/// The convolution kernel and Burn's `Conv2d` agree to `tol` (relative to each quantity's
/// largest value): output, and the gradients of input (when tracked), weight and bias.
pub fn convolution_matches_burn(device: &Device, tol: f64) {
    // (x, weight [C_out, C_in, KH, KW], x tracked, x transposed)
    let cases = [
        ([2, 3, 7, 6], [4, 3, 3, 2], true, false),
        ([1, 1, 5, 5], [1, 1, 5, 5], true, true), // one output position
        ([3, 2, 4, 9], [5, 2, 1, 1], true, false),
        ([128, 1, 28, 28], [6, 1, 5, 5], false, false), // the LeNet's first convolution
        ([128, 6, 12, 12], [16, 6, 5, 5], true, false), // and its second
        ([5, 6, 12, 12], [16, 6, 5, 5], true, true),
        ([2, 3, 9, 22], [7, 3, 2, 3], true, false), // strips at columns 0, 8 and 12
    ];
    for (shape, [co, ci, kh, kw], track, transpose) in cases {
        let conv = Conv2dConfig::new([ci, co], [kh, kw]).init(device);
        let results: Vec<Vec<Vec<f64>>> = [true, false]
            .into_iter()
            .map(|kernel| {
                let (x, view) = input(shape, transpose, track, device);
                let y = match kernel {
                    true => conv2d(&conv, view),
                    false => conv.forward(view),
                };
                let (loss, y) = objective(y, device);
                let grads = loss.backward();
                let mut out = vec![y];
                if track {
                    out.push(host(x.grad(&grads).expect("x has a gradient")));
                }
                out.push(host(conv.weight.grad(&grads).expect("a weight gradient")));
                let bias = conv.bias.as_ref().expect("a bias");
                out.push(host(bias.grad(&grads).expect("a bias gradient")));
                out
            })
            .collect();
        for (q, (ours, burn)) in results[0].iter().zip(&results[1]).enumerate() {
            let what = format!("conv {shape:?} * {:?}: quantity {q}", [co, ci, kh, kw]);
            assert_agree(&what, ours, burn, tol);
        }
    }
}
