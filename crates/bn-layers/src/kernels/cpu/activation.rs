//! The activations a BatchNorm kernel applies to its output, and their backward from that
//! output. The `f32` sigmoid is branch-free (its `exp` a polynomial), so the loops that call
//! it vectorize; the `f64` one calls the C library's `exp`, as Burn's flex backend does.

use super::shares::{Shares, on_threads};
use super::{Real, SimdKernel, map_run2, simd};
use crate::Activation;

/// `exp(-a)` for `a ≥ 0`, to a few ulp, as a polynomial the compiler vectorizes (Cephes'
/// `expf`: `2^n · exp(r)` with `|r| ≤ ln2/2`). Values below `f32`'s smallest normal
/// (`a > 87.33`) flush to zero; NaN stays NaN.
#[inline(always)]
fn exp_neg_f32(a: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, the first with few enough bits that `n · LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low bits of the sum.
    const ROUND: f32 = 12_582_912.0;
    let x = -a;
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let exp_r = p * r * r + r + 1.0;
    // 2^n from n's bits: the sum's low bits hold n + 0x40_0000.
    let n_bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits((n_bits.wrapping_add(127) << 23) as u32);
    if a > 87.33 { 0.0 } else { exp_r * scale }
}

/// The logistic sigmoid in `f32`, branch-free: `1 / (1 + e)` or `e / (1 + e)` with
/// `e = exp(-|z|) ≤ 1`, so nothing overflows.
#[inline(always)]
pub(crate) fn sigmoid_f32(z: f32) -> f32 {
    let e = exp_neg_f32(z.abs());
    let r = 1.0 / (1.0 + e);
    if z >= 0.0 { r } else { e * r }
}

/// The logistic sigmoid in `f64`, as Burn's flex backend computes it.
#[inline(always)]
pub(crate) fn sigmoid_f64(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `max(z, 0)`, NaN kept (PyTorch's `relu`).
#[inline(always)]
pub(crate) fn relu<E: Real>(z: E) -> E {
    let zero = E::from_f64(0.0);
    if z < zero { zero } else { z }
}

/// `dy · f'(z)` from the output `y = f(z)`: PyTorch's `sigmoid_backward` and
/// `threshold_backward` (a NaN output passes `dy` on).
#[inline(always)]
fn activation_grad<E: Real>(activation: Activation, y: E, dy: E) -> E {
    let one = E::from_f64(1.0);
    let zero = E::from_f64(0.0);
    match activation {
        Activation::Sigmoid => dy * y * (one - y),
        Activation::Relu => {
            if y <= zero {
                zero
            } else {
                dy
            }
        }
    }
}

/// Writes `out = dy · f'(z)` from the output `y`; `dy = None` means `out` holds `dy`.
pub(crate) fn apply_activation_grad<E: Real>(
    out: &mut [E],
    y: &[E],
    dy: Option<&[E]>,
    activation: Activation,
) {
    let parts = Shares::new(out.len(), 1).split(out, y, dy);
    on_threads(parts, |_, (y, dy, out)| {
        simd(GradTask(out, y, dy, activation))
    });
}

/// One share of [`apply_activation_grad`].
struct GradTask<'a, E>(&'a mut [E], &'a [E], Option<&'a [E]>, Activation);

impl<E: Real> SimdKernel for GradTask<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<S: pulp::Simd>(self, _: S) {
        let GradTask(out, y, dy, activation) = self;
        match activation {
            Activation::Sigmoid => map_run2(out, y, dy, |y, g| {
                activation_grad(Activation::Sigmoid, y, g)
            }),
            Activation::Relu => {
                map_run2(out, y, dy, |y, g| activation_grad(Activation::Relu, y, g))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MIN_TASK;
    use super::*;

    fn sigmoid_exact(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn the_f32_sigmoid_is_within_three_ulp_of_the_exact_one() {
        // Every 1/64 over [-20, 20], plus the range reduction's edges.
        let mut worst = 0.0f64;
        for i in -1280..=1280 {
            let z = i as f32 / 64.0;
            let exact = sigmoid_exact(z as f64);
            let ulp = f32::EPSILON as f64 * exact.abs().max(f32::MIN_POSITIVE as f64);
            worst = worst.max((sigmoid_f32(z) as f64 - exact).abs() / ulp);
        }
        assert!(worst <= 3.0, "worst error {worst} ulp");
    }

    #[test]
    fn the_f32_sigmoid_saturates_and_keeps_nan() {
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_f32(200.0), 1.0);
        assert_eq!(sigmoid_f32(-200.0), 0.0);
        // exp(-80) ≈ 1.8e-35 is still a normal f32.
        let tail = sigmoid_f32(-80.0) as f64;
        assert!((tail - 1.804_851_387_845_415e-35).abs() < 1e-41, "{tail}");
        assert!(sigmoid_f32(f32::NAN).is_nan());
    }

    #[test]
    fn relu_keeps_nan_and_its_gradient_passes_only_where_the_output_is_positive() {
        assert_eq!(relu(-1.5f32), 0.0);
        assert_eq!(relu(2.5f64), 2.5);
        assert!(relu(f32::NAN).is_nan());
        assert_eq!(activation_grad(Activation::Relu, 0.0f32, 3.0), 0.0);
        assert_eq!(activation_grad(Activation::Relu, 0.5f32, 3.0), 3.0);
        assert_eq!(activation_grad(Activation::Relu, f32::NAN, 3.0), 3.0);
        // y = 0.25: y (1 - y) = 0.1875.
        assert_eq!(activation_grad(Activation::Sigmoid, 0.25f64, 2.0), 0.375);
    }

    #[test]
    fn the_gradient_kernel_works_in_place_and_over_several_tasks() {
        let len = 2 * MIN_TASK + 17;
        let y: Vec<f32> = (0..len).map(|i| (i % 97) as f32 / 97.0).collect();
        let dy: Vec<f32> = (0..len).map(|i| 1.0 + (i % 5) as f32).collect();
        let expected: Vec<f32> = (y.iter().zip(&dy))
            .map(|(&y, &g)| g * y * (1.0 - y))
            .collect();
        let mut out = vec![0.0; len];
        apply_activation_grad(&mut out, &y, Some(&dy), Activation::Sigmoid);
        assert_eq!(out, expected);
        let mut in_place = dy.clone();
        apply_activation_grad(&mut in_place, &y, None, Activation::Sigmoid);
        assert_eq!(in_place, expected);
    }
}
