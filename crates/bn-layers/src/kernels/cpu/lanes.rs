//! Explicit SIMD for the sums the statistics are made of. Auto-vectorized sums keep one
//! vector accumulator per sum, so each addition waits for the one before it (four cycles on
//! current x86 cores) and a run is summed at a quarter of the speed the core could add;
//! here each sum has two accumulators and the sum and the sum of squares share one pass.

use pulp::Simd;

use super::{Centre, Real};

/// A float type's SIMD vectors under the instruction set `S`, with the few operations the
/// sums need.
pub(crate) trait Lanes: Sized + Copy {
    /// `S`'s vector of this type.
    type Vector<S: Simd>: Copy;
    /// `values` as whole vectors, and the values left over.
    fn as_vectors<S: Simd>(values: &[Self]) -> (&[Self::Vector<S>], &[Self]);
    fn splat<S: Simd>(simd: S, value: Self) -> Self::Vector<S>;
    fn add_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Vector<S>;
    fn sub_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Vector<S>;
    fn mul_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Vector<S>;
    /// `a · b + c`, fused where the CPU can.
    fn mul_add_lanes<S: Simd>(
        simd: S,
        a: Self::Vector<S>,
        b: Self::Vector<S>,
        c: Self::Vector<S>,
    ) -> Self::Vector<S>;
    /// The sum of a vector's lanes.
    fn sum_lanes<S: Simd>(simd: S, a: Self::Vector<S>) -> Self;
}

macro_rules! lanes {
    ($e:ty, $v:ident, $as:ident, $splat:ident, $add:ident, $sub:ident, $mul:ident, $fma:ident,
     $sum:ident) => {
        impl Lanes for $e {
            type Vector<S: Simd> = S::$v;
            #[inline(always)]
            fn as_vectors<S: Simd>(values: &[$e]) -> (&[S::$v], &[$e]) {
                S::$as(values)
            }
            #[inline(always)]
            fn splat<S: Simd>(simd: S, value: $e) -> S::$v {
                simd.$splat(value)
            }
            #[inline(always)]
            fn add_lanes<S: Simd>(simd: S, a: S::$v, b: S::$v) -> S::$v {
                simd.$add(a, b)
            }
            #[inline(always)]
            fn sub_lanes<S: Simd>(simd: S, a: S::$v, b: S::$v) -> S::$v {
                simd.$sub(a, b)
            }
            #[inline(always)]
            fn mul_lanes<S: Simd>(simd: S, a: S::$v, b: S::$v) -> S::$v {
                simd.$mul(a, b)
            }
            #[inline(always)]
            fn mul_add_lanes<S: Simd>(simd: S, a: S::$v, b: S::$v, c: S::$v) -> S::$v {
                simd.$fma(a, b, c)
            }
            #[inline(always)]
            fn sum_lanes<S: Simd>(simd: S, a: S::$v) -> $e {
                simd.$sum(a)
            }
        }
    };
}

lanes!(
    f32,
    f32s,
    as_simd_f32s,
    splat_f32s,
    add_f32s,
    sub_f32s,
    mul_f32s,
    mul_add_e_f32s,
    reduce_sum_f32s
);
lanes!(
    f64,
    f64s,
    as_simd_f64s,
    splat_f64s,
    add_f64s,
    sub_f64s,
    mul_f64s,
    mul_add_e_f64s,
    reduce_sum_f64s
);

/// `(Σ c, Σ c²)` of the offsets `c = v - hi` of a run (`hi` the centre's value in `E`), in
/// one pass over it: in `E` within the run (it is short: one row, or one channel's positions
/// of one sample), two accumulators per sum, their lanes added in `E` and the leftover values
/// in `f64`.
#[inline(always)]
pub(crate) fn centred_sums<S: Simd, E: Real>(
    simd: S,
    values: &[E],
    centre: Centre<E>,
) -> (f64, f64) {
    let (vectors, tail) = E::as_vectors::<S>(values);
    let hi = E::splat(simd, centre.hi);
    let zero = E::splat(simd, E::from_f64(0.0));
    let (mut sum, mut sum2, mut square, mut square2) = (zero, zero, zero, zero);
    let (pairs, odd) = vectors.as_chunks::<2>();
    for &[a, b] in pairs {
        let (a, b) = (E::sub_lanes(simd, a, hi), E::sub_lanes(simd, b, hi));
        sum = E::add_lanes(simd, sum, a);
        sum2 = E::add_lanes(simd, sum2, b);
        square = E::mul_add_lanes(simd, a, a, square);
        square2 = E::mul_add_lanes(simd, b, b, square2);
    }
    for &a in odd {
        let a = E::sub_lanes(simd, a, hi);
        sum = E::add_lanes(simd, sum, a);
        square = E::mul_add_lanes(simd, a, a, square);
    }
    // No closures here: a closure is compiled without the dispatched instruction set.
    let mut sum = E::sum_lanes(simd, E::add_lanes(simd, sum, sum2)).to_f64();
    let mut square = E::sum_lanes(simd, E::add_lanes(simd, square, square2)).to_f64();
    for &v in tail {
        let c = centre.offset(v).to_f64();
        sum += c;
        square += c * c;
    }
    (sum, square)
}

/// `(Σ dy, Σ dy·c, Σ c)` over a run of `x` and `dy`, `c = x - hi`, in one pass as
/// [`centred_sums`].
#[inline(always)]
pub(crate) fn grad_sums<S: Simd, E: Real>(
    simd: S,
    x: &[E],
    dy: &[E],
    centre: Centre<E>,
) -> (f64, f64, f64) {
    let (xs, x_tail) = E::as_vectors::<S>(x);
    let (gs, g_tail) = E::as_vectors::<S>(dy);
    let hi = E::splat(simd, centre.hi);
    let zero = E::splat(simd, E::from_f64(0.0));
    let [mut g0, mut g1, mut gc0, mut gc1, mut c0, mut c1] = [zero; 6];
    let (x_pairs, x_odd) = xs.as_chunks::<2>();
    let (g_pairs, g_odd) = gs.as_chunks::<2>();
    for (&[xa, xb], &[ga, gb]) in x_pairs.iter().zip(g_pairs) {
        let (ca, cb) = (E::sub_lanes(simd, xa, hi), E::sub_lanes(simd, xb, hi));
        g0 = E::add_lanes(simd, g0, ga);
        g1 = E::add_lanes(simd, g1, gb);
        gc0 = E::mul_add_lanes(simd, ga, ca, gc0);
        gc1 = E::mul_add_lanes(simd, gb, cb, gc1);
        c0 = E::add_lanes(simd, c0, ca);
        c1 = E::add_lanes(simd, c1, cb);
    }
    for (&xa, &ga) in x_odd.iter().zip(g_odd) {
        let ca = E::sub_lanes(simd, xa, hi);
        g0 = E::add_lanes(simd, g0, ga);
        gc0 = E::mul_add_lanes(simd, ga, ca, gc0);
        c0 = E::add_lanes(simd, c0, ca);
    }
    let mut g = E::sum_lanes(simd, E::add_lanes(simd, g0, g1)).to_f64();
    let mut gc = E::sum_lanes(simd, E::add_lanes(simd, gc0, gc1)).to_f64();
    let mut c = E::sum_lanes(simd, E::add_lanes(simd, c0, c1)).to_f64();
    for (&x, &dy) in x_tail.iter().zip(g_tail) {
        let (offset, dy) = (centre.offset(x).to_f64(), dy.to_f64());
        g += dy;
        gc += dy * offset;
        c += offset;
    }
    (g, gc, c)
}

/// `(Σ dy·γ, Σ dy·γ·c)` over a row of `x`, `dy` and per-value `γ`, `c = x - hi`, in one
/// pass as [`centred_sums`].
#[inline(always)]
pub(crate) fn weighted_grad_sums<S: Simd, E: Real>(
    simd: S,
    x: &[E],
    dy: &[E],
    gamma: &[E],
    centre: Centre<E>,
) -> (f64, f64) {
    let (xs, x_tail) = E::as_vectors::<S>(x);
    let (gs, g_tail) = E::as_vectors::<S>(dy);
    let (ws, w_tail) = E::as_vectors::<S>(gamma);
    let hi = E::splat(simd, centre.hi);
    let zero = E::splat(simd, E::from_f64(0.0));
    let [mut a0, mut a1, mut b0, mut b1] = [zero; 4];
    let (x_pairs, x_odd) = xs.as_chunks::<2>();
    let (g_pairs, g_odd) = gs.as_chunks::<2>();
    let (w_pairs, w_odd) = ws.as_chunks::<2>();
    for ((&[xa, xb], &[ga, gb]), &[wa, wb]) in x_pairs.iter().zip(g_pairs).zip(w_pairs) {
        let (ga, gb) = (E::mul_lanes(simd, ga, wa), E::mul_lanes(simd, gb, wb));
        a0 = E::add_lanes(simd, a0, ga);
        a1 = E::add_lanes(simd, a1, gb);
        b0 = E::mul_add_lanes(simd, ga, E::sub_lanes(simd, xa, hi), b0);
        b1 = E::mul_add_lanes(simd, gb, E::sub_lanes(simd, xb, hi), b1);
    }
    for ((&xa, &ga), &wa) in x_odd.iter().zip(g_odd).zip(w_odd) {
        let ga = E::mul_lanes(simd, ga, wa);
        a0 = E::add_lanes(simd, a0, ga);
        b0 = E::mul_add_lanes(simd, ga, E::sub_lanes(simd, xa, hi), b0);
    }
    let mut a = E::sum_lanes(simd, E::add_lanes(simd, a0, a1)).to_f64();
    let mut b = E::sum_lanes(simd, E::add_lanes(simd, b0, b1)).to_f64();
    for ((&x, &dy), &w) in x_tail.iter().zip(g_tail).zip(w_tail) {
        let g = (dy * w).to_f64();
        a += g;
        b += g * centre.offset(x).to_f64();
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    //! Each sum against its definition in `f64`, at lengths that leave every path of the loops
    //! (pairs of vectors, an odd vector, leftover values) used or empty.
    use super::super::{SimdKernel, simd};
    use super::*;

    /// The three sums of a run, computed where the kernels compute them: under [`simd`].
    struct Sums<'a>(&'a [f32], &'a [f32], &'a [f32], Centre<f32>);

    impl SimdKernel for Sums<'_> {
        type Output = [f64; 7];
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) -> [f64; 7] {
            let Sums(x, dy, gamma, centre) = self;
            let (c, c2) = centred_sums(simd, x, centre);
            let (g, gc, c_again) = grad_sums(simd, x, dy, centre);
            let (a, b) = weighted_grad_sums(simd, x, dy, gamma, centre);
            [c, c2, g, gc, c_again, a, b]
        }
    }

    #[test]
    fn sums_match_their_definitions_at_every_length() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 33, 64, 100, 1000] {
            let x: Vec<f32> = (0..len)
                .map(|i| 3.0 + ((i * 37) % 11) as f32 * 0.125)
                .collect();
            let dy: Vec<f32> = (0..len)
                .map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.5)
                .collect();
            let gamma: Vec<f32> = (0..len).map(|i| 1.0 + (i % 3) as f32 * 0.25).collect();
            let centre = Centre::<f32>::new(3.5);
            let got = simd(Sums(&x, &dy, &gamma, centre));
            let c = |i: usize| x[i] as f64 - 3.5;
            let sum = |f: &dyn Fn(usize) -> f64| (0..len).map(f).sum::<f64>();
            let want = [
                sum(&c),
                sum(&|i| c(i) * c(i)),
                sum(&|i| dy[i] as f64),
                sum(&|i| dy[i] as f64 * c(i)),
                sum(&c),
                sum(&|i| dy[i] as f64 * gamma[i] as f64),
                sum(&|i| dy[i] as f64 * gamma[i] as f64 * c(i)),
            ];
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                // Every product and partial sum here is exact in f32 (eighths, small
                // counts), so the sums must be too.
                assert_eq!(*g, w, "sum {k} at length {len}");
            }
        }
    }
}
