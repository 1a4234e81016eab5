//! The normalization arithmetic on contiguous slices: the body of the flex kernels.
//!
//! Two layouts cover every layer:
//! - **per channel** (BatchNorm): `x` is `[N, C, S]` and each channel's statistics gather the
//!   `N` runs of `S` values it owns;
//! - **per row** (GroupNorm, and through it InstanceNorm and LayerNorm): `x` is `[R, K]` with
//!   `R = N·G` rows of `K = (C/G)·S` contiguous values, each row a run of `C/G` channels.
//!
//! Sums run in the input's precision over sixteen independent lanes within a run (so they
//! vectorize; a run is short) and in `f64` across runs; means and variances come from centred
//! sums, never `Σx² - (Σx)²/m`. The mean is split into its rounding to `E` and the remainder,
//! so `x - mean` loses nothing to the rounding of a large mean. The channel kernels split
//! their runs into a few shares per thread, taken in turn by the calling thread and rayon's
//! workers ([`shares`]); the row kernels split their rows across rayon's pool. Each share or
//! task is compiled for the CPU's SIMD width ([`simd`]); an input is read from memory once or
//! twice, and every output is written once.

use std::ops::{Add, Mul, Sub};

/// The float types the CPU kernels compute in.
pub(crate) trait Real:
    Copy + Send + Sync + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
    /// The logistic sigmoid ([`activation`]).
    fn sigmoid(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        activation::sigmoid_f32(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        activation::sigmoid_f64(self)
    }
}

/// The least values a share or rayon task is given: below this, handing work to another
/// thread (tens of microseconds to wake it) costs more than it saves.
const MIN_TASK: usize = 1 << 16;

/// A kernel's body for one share or task, compiled by [`simd`] for the widest SIMD instruction set
/// this CPU offers. `run` must be `#[inline(always)]`: it is then compiled inside pulp's
/// dispatched function (a closure or a function called through `FnOnce` would not be).
trait SimdKernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 and FMA on x86-64 CPUs that have them (pulp picks at run
/// time), so its loops vectorize at that width even when the binary targets baseline x86-64.
/// Called inside each share or task.
#[inline(always)]
fn simd<K: SimdKernel>(kernel: K) -> K::Output {
    struct Dispatched<K>(K);
    impl<K: SimdKernel> pulp::WithSimd for Dispatched<K> {
        type Output = K::Output;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> K::Output {
            self.0.run()
        }
    }
    pulp::Arch::new().dispatch(Dispatched(kernel))
}

/// Lanes of the in-run accumulators: independent sums, so the loop vectorizes.
const LANES: usize = 16;

/// The sum of `f(v)` over a run in the input's precision, sixteen lanes wide, as `f64`. A run
/// is short (one channel's positions of one sample, or one row), so `E` keeps its digits; the
/// runs' sums are then added in `f64`.
#[inline(always)]
fn sum_run<E: Real>(values: &[E], f: impl Fn(E) -> E) -> f64 {
    let mut lanes = [E::from_f64(0.0); LANES];
    let (chunks, tail) = values.as_chunks::<LANES>();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = *lane + f(v);
        }
    }
    total(lanes) + tail.iter().map(|&v| f(v).to_f64()).sum::<f64>()
}

/// The lanes of an accumulator, added in `f64`.
#[inline(always)]
fn total<E: Real>(lanes: [E; LANES]) -> f64 {
    lanes.iter().map(|v| v.to_f64()).sum()
}

/// `(Σ c, Σ c²)` of the offsets `c = v - hi` of a run, as [`sum_run`]: two passes over the
/// run (it sits in cache). One loop accumulating both is vectorized by LLVM across each
/// (sum, square) pair rather than across the lanes, which ran scalar.
#[inline(always)]
fn centred_sums<E: Real>(values: &[E], centre: Centre<E>) -> (f64, f64) {
    let sum = sum_run(values, |v| centre.offset(v));
    let square = sum_run(values, |v| {
        let c = centre.offset(v);
        c * c
    });
    (sum, square)
}

/// The sum of `f(a, b)` over pairs of two runs, as [`sum_run`].
#[inline(always)]
fn sum_run2<E: Real>(a: &[E], b: &[E], f: impl Fn(E, E) -> E) -> f64 {
    let mut lanes = [E::from_f64(0.0); LANES];
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    for (ca, cb) in a_chunks.iter().zip(b_chunks) {
        for ((lane, &va), &vb) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane = *lane + f(va, vb);
        }
    }
    let tail: f64 = (a_tail.iter().zip(b_tail))
        .map(|(&va, &vb)| f(va, vb).to_f64())
        .sum();
    total(lanes) + tail
}

/// The sum of `f(a, b, c)` over triples of three runs, as [`sum_run`].
#[inline(always)]
fn sum_run3<E: Real>(a: &[E], b: &[E], c: &[E], f: impl Fn(E, E, E) -> E) -> f64 {
    let mut lanes = [E::from_f64(0.0); LANES];
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let (c_chunks, c_tail) = c.as_chunks::<LANES>();
    for ((ca, cb), cc) in a_chunks.iter().zip(b_chunks).zip(c_chunks) {
        for (((lane, &va), &vb), &vc) in lanes.iter_mut().zip(ca).zip(cb).zip(cc) {
            *lane = *lane + f(va, vb, vc);
        }
    }
    let tail: f64 = (a_tail.iter().zip(b_tail).zip(c_tail))
        .map(|((&va, &vb), &vc)| f(va, vb, vc).to_f64())
        .sum();
    total(lanes) + tail
}

/// A mean split for exact centring in the input's precision: `x - mean` is computed as
/// `(x - hi) - lo`, where `hi` is the mean rounded to `E` and `lo` the rounding error. For `x`
/// near the mean the first difference is exact, so a large mean costs no digits.
#[derive(Clone, Copy)]
pub(crate) struct Centre<E> {
    hi: E,
    lo: E,
}

impl<E: Real> Centre<E> {
    pub(crate) fn new(mean: f64) -> Self {
        let hi = E::from_f64(mean);
        Self {
            hi,
            lo: E::from_f64(mean - hi.to_f64()),
        }
    }

    #[inline(always)]
    fn apply(self, x: E) -> E {
        (x - self.hi) - self.lo
    }

    /// `x - hi`, for sums: one subtraction in the loop, and the remainder accounted for
    /// once, `Σ(x - mean) = Σ(x - hi) - n·lo`.
    #[inline(always)]
    fn offset(self, x: E) -> E {
        x - self.hi
    }

    fn lo(self) -> f64 {
        self.lo.to_f64()
    }

    fn hi(self) -> f64 {
        self.hi.to_f64()
    }
}

/// Count, mean and centred sum of squares of a set of values (Chan et al.'s pairwise
/// combination merges two sets without losing the centring).
#[derive(Clone, Copy, Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// One pass over a run that sits in cache, centred on the mean of its first values (the
    /// shifted-data algorithm): `Σ(x - p)` and `Σ(x - p)²` give the mean and the centred
    /// squares exactly when `p` is near the mean. Where it is not (the offset exceeds the
    /// standard deviation, so cancellation could cost a bit), a second pass re-centres on the
    /// mean just found.
    #[inline(always)]
    fn of<E: Real>(values: &[E]) -> Self {
        let count = values.len() as f64;
        let head = &values[..values.len().min(LANES)];
        let pivot = head.iter().map(|v| v.to_f64()).sum::<f64>() / head.len() as f64;
        let moments = Self::about(values, Centre::<E>::new(pivot), count);
        let offset = moments.mean - pivot;
        if offset * offset <= moments.m2 / count {
            return moments;
        }
        Self::about(values, Centre::<E>::new(moments.mean), count)
    }

    /// The moments from one pass of offsets from `centre`'s rounded value `hi`: the mean is
    /// `hi + Σ(x - hi)/n`, and `Σ(x - hi)² = Σ(x - mean)² + n·(mean - hi)²`.
    #[inline(always)]
    fn about<E: Real>(values: &[E], centre: Centre<E>, count: f64) -> Self {
        let (offsets, squares) = centred_sums(values, centre);
        let shift = offsets / count;
        Self {
            count,
            mean: centre.hi() + shift,
            m2: (squares - count * shift * shift).max(0.0),
        }
    }

    fn merge(self, other: Self) -> Self {
        if self.count == 0.0 {
            return other;
        }
        if other.count == 0.0 {
            return self;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Self {
            count,
            mean: self.mean + delta * (other.count / count),
            m2: self.m2 + other.m2 + delta * delta * (self.count * other.count / count),
        }
    }
}

fn add_vectors(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (a, b) in a.iter_mut().zip(&b) {
        *a += b;
    }
    a
}

/// `out[i] = f(src[i])`, or `out[i] = f(out[i])` when `src` is `None`.
#[inline(always)]
fn map_run<E: Real>(out: &mut [E], src: Option<&[E]>, f: impl Fn(E) -> E) {
    match src {
        Some(src) => {
            for (o, &x) in out.iter_mut().zip(src) {
                *o = f(x);
            }
        }
        None => {
            for o in out.iter_mut() {
                *o = f(*o);
            }
        }
    }
}

/// `out[i] = f(x[i], dy[i])`, where `dy = None` means `out` holds `dy` and is overwritten.
#[inline(always)]
fn map_run2<E: Real>(out: &mut [E], x: &[E], dy: Option<&[E]>, f: impl Fn(E, E) -> E) {
    match dy {
        Some(dy) => {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(dy) {
                *o = f(x, g);
            }
        }
        None => {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = f(x, *o);
            }
        }
    }
}

mod activation;
mod channel;
mod row;
mod shares;
#[cfg(test)]
mod tests;

pub(crate) use activation::apply_activation_grad;
pub(crate) use channel::{
    ChannelAffine, ChannelDims, ChannelGrad, apply_channel_affine, apply_channel_grad,
    channel_grad_sums, channel_moments,
};
pub(crate) use row::{RowDims, row_norm, row_norm_backward};
