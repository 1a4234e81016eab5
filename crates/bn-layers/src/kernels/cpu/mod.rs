//! The normalization arithmetic on contiguous slices: the body of the flex kernels.
//!
//! Two layouts cover every layer:
//! - **per channel** (BatchNorm): `x` is `[N, C, S]` and each channel's statistics gather the
//!   `N` runs of `S` values it owns;
//! - **per row** (GroupNorm, and through it InstanceNorm and LayerNorm): `x` is `[R, K]` with
//!   `R = N·G` rows of `K = (C/G)·S` contiguous values, each row a run of `C/G` channels.
//!
//! Sums run in the input's precision within a run, in explicit SIMD vectors with two
//! accumulators per sum ([`lanes`]; a run is short), and in `f64` across runs; means and
//! variances come from centred sums, never `Σx² - (Σx)²/m`. The mean is split into its
//! rounding to `E` and the remainder, so `x - mean` loses nothing to the rounding of a large
//! mean. The channel kernels split their runs into a few shares per thread, taken in turn by
//! the calling thread and rayon's workers ([`shares`]); the row kernels split their rows
//! across rayon's pool. Each share or task is compiled for the CPU's SIMD width ([`simd`]);
//! an input is read from memory once or twice, and every output is written once (a fresh one
//! after [`zeroed`]).

use std::ops::{Add, Mul, Sub};

use lanes::Lanes;
use rayon::iter::{IndexedParallelIterator, ParallelExtend};

/// The float types the CPU kernels compute in.
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Lanes
{
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `self · a + b` with one rounding: one instruction in a kernel dispatched for FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
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
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
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
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
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
/// dispatched function (a closure or a function called through `FnOnce` would not be). It
/// gets the instruction set's token for the explicit vector code of [`lanes`].
trait SimdKernel {
    type Output;
    fn run<S: pulp::Simd>(self, simd: S) -> Self::Output;
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
        fn with_simd<S: pulp::Simd>(self, simd: S) -> K::Output {
            self.0.run(simd)
        }
    }
    pulp::Arch::new().dispatch(Dispatched(kernel))
}

/// Values the pivot of a run's moments is taken from ([`Moments::of`]).
const LANES: usize = 16;

/// A mean split for exact centring in the input's precision: `x - mean` is computed as
/// `(x - hi) - lo`, where `hi` is the mean rounded to `E` and `lo` the rounding error. For `x`
/// near the mean the first difference is exact, so a large mean costs no digits.
#[derive(Clone, Copy)]
pub(crate) struct Centre<E> {
    hi: E,
    lo: E,
}

impl<E: Real> Centre<E> {
    /// The centre at `mean`; a NaN or infinite mean is all `hi` (`lo = 0`), so `x - mean`
    /// is what plain arithmetic gives (`x - ∞ = -∞`) rather than `∞ - ∞`'s NaN.
    pub(crate) fn new(mean: f64) -> Self {
        let hi = E::from_f64(mean);
        let lo = if mean.is_finite() {
            mean - hi.to_f64()
        } else {
            0.0
        };
        Self {
            hi,
            lo: E::from_f64(lo),
        }
    }

    #[inline(always)]
    fn apply(self, x: E) -> E {
        (x - self.hi) - self.lo
    }

    /// `(x - mean) · scale + shift` about this centre, as an [`Affine`].
    pub(crate) fn affine(self, scale: f64, shift: f64) -> Affine<E> {
        Affine {
            hi: self.hi,
            scale: E::from_f64(scale),
            shift: E::from_f64(shift - self.lo.to_f64() * scale),
        }
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

/// `y = (x - mean) · scale + shift` as one subtraction and one fused multiply-add,
/// `(x - hi) · scale + (shift - lo · scale)`: the centre's remainder is folded into the shift
/// once, so a large mean still costs no digits.
#[derive(Clone, Copy)]
pub(crate) struct Affine<E> {
    hi: E,
    scale: E,
    shift: E,
}

impl<E: Real> Affine<E> {
    #[inline(always)]
    fn apply(self, x: E) -> E {
        (x - self.hi).mul_add(self.scale, self.shift)
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
    /// mean just found. A NaN or infinity among the values makes the mean non-finite; the
    /// moments are then [`Moments::non_finite`]'s.
    #[inline(always)]
    fn of<S: pulp::Simd, E: Real>(simd: S, values: &[E]) -> Self {
        let count = values.len() as f64;
        let head = &values[..values.len().min(LANES)];
        let pivot = head.iter().map(|v| v.to_f64()).sum::<f64>() / head.len() as f64;
        let moments = Self::about(simd, values, Centre::<E>::new(pivot), count);
        if !moments.mean.is_finite() {
            return Self::non_finite(values.iter().map(|v| v.to_f64()).sum(), count);
        }
        let offset = moments.mean - pivot;
        if offset * offset <= moments.m2 / count {
            return moments;
        }
        Self::about(simd, values, Centre::<E>::new(moments.mean), count)
    }

    /// The moments from one pass of offsets from `centre`'s rounded value `hi`: the mean is
    /// `hi + Σ(x - hi)/n`, and `Σ(x - hi)² = Σ(x - mean)² + n·(mean - hi)²`.
    #[inline(always)]
    fn about<S: pulp::Simd, E: Real>(simd: S, values: &[E], centre: Centre<E>, count: f64) -> Self {
        let (offsets, squares) = lanes::centred_sums(simd, values, centre);
        let shift = offsets / count;
        Self {
            count,
            mean: centre.hi() + shift,
            m2: (squares - count * shift * shift).max(0.0),
        }
    }

    /// The moments of values among which is a NaN or an infinity, as PyTorch computes them:
    /// the mean is the sum's (`∞` for infinities of one sign, else NaN), and the centred
    /// squares `Σ(x - mean)²` are NaN (`∞ - ∞` for the infinite value itself).
    fn non_finite(sum: f64, count: f64) -> Self {
        Self {
            count,
            mean: sum / count,
            m2: f64::NAN,
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
        if !(self.mean.is_finite() && other.mean.is_finite()) {
            return Self::non_finite(self.mean * self.count + other.mean * other.count, count);
        }
        let delta = other.mean - self.mean;
        Self {
            count,
            mean: self.mean + delta * (other.count / count),
            m2: self.m2 + other.m2 + delta * delta * (self.count * other.count / count),
        }
    }
}

/// A fresh buffer of `len` zeros for a kernel to write its output into, zeroed by rayon's
/// threads together. Safe Rust cannot hand a kernel uninitialized memory, and zeroing a
/// multi-megabyte buffer on one thread (what `vec![0.0; len]` does) costs a good part of
/// what the kernel itself takes. Small buffers are zeroed on the calling thread (waking rayon's
/// workers would cost more), and so are those above glibc's largest mmap threshold (32 MiB):
/// such a buffer is a fresh mapping whose pages the OS zeroes on first touch, so `vec!`
/// (`calloc`) writes nothing.
pub(crate) fn zeroed<E: Real>(len: usize) -> Vec<E> {
    let zero = E::from_f64(0.0);
    if len < 2 * MIN_TASK || len * size_of::<E>() > 32 << 20 {
        return vec![zero; len];
    }
    let mut out = Vec::with_capacity(len);
    out.par_extend(rayon::iter::repeat_n(zero, len).with_min_len(MIN_TASK));
    out
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
mod channel_grad;
mod lanes;
mod row;
mod shares;
#[cfg(test)]
mod tests;

pub(crate) use activation::apply_activation_grad;
pub(crate) use channel::{ChannelAffine, ChannelDims, apply_channel_affine, channel_moments};
pub(crate) use channel_grad::{ChannelGrad, apply_channel_grad, channel_grad_sums};
pub(crate) use row::{RowDims, row_norm, row_norm_backward};
