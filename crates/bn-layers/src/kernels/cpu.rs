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
//! so `x - mean` loses nothing to the rounding of a large mean. Work is split across rayon's
//! pool by runs or rows, each task compiled for the CPU's SIMD width ([`simd`]); an input is
//! read from memory once or twice, and every output is written once.

use std::ops::{Add, Mul, Sub};

use rayon::prelude::*;

/// The float types the CPU kernels compute in.
pub(crate) trait Real:
    Copy + Send + Sync + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
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
}

/// Values per rayon task: below this, handing work to another thread (tens of
/// microseconds to wake it) costs more than it saves.
const MIN_TASK: usize = 1 << 16;

/// A kernel's body for one task, compiled by [`simd`] for the widest SIMD instruction set
/// this CPU offers. `run` must be `#[inline(always)]`: it is then compiled inside pulp's
/// dispatched function (a closure or a function called through `FnOnce` would not be).
trait SimdKernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 and FMA on x86-64 CPUs that have them (pulp picks at run
/// time), so its loops vectorize at that width even when the binary targets baseline x86-64.
/// Called inside each rayon task.
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

/// `(Σ c, Σ c²)` of the offsets `c = v - hi` of a run, as [`sum_run`].
#[inline(always)]
fn centred_sums<E: Real>(values: &[E], centre: Centre<E>) -> (f64, f64) {
    let zero = E::from_f64(0.0);
    let (mut sums, mut squares) = ([zero; LANES], [zero; LANES]);
    let (chunks, tail) = values.as_chunks::<LANES>();
    for chunk in chunks {
        for ((s, q), &v) in sums.iter_mut().zip(&mut squares).zip(chunk) {
            let c = centre.offset(v);
            *s = *s + c;
            *q = *q + c * c;
        }
    }
    let (mut sum, mut square) = (total(sums), total(squares));
    for &v in tail {
        let c = centre.offset(v).to_f64();
        sum += c;
        square += c * c;
    }
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

/// [`Moments::of`] one run, as a [`SimdKernel`].
struct RunMoments<'a, E>(&'a [E]);

impl<E: Real> SimdKernel for RunMoments<'_, E> {
    type Output = Moments;
    #[inline(always)]
    fn run(self) -> Moments {
        Moments::of(self.0)
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

/// Shape of a per-channel (BatchNorm) view: `[n, c, s]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelDims {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

/// Per-channel mean and biased variance of `x: [N, C, S]`.
pub(crate) fn channel_moments<E: Real>(x: &[E], d: ChannelDims) -> (Vec<f64>, Vec<f64>) {
    let ChannelDims { c, s, .. } = d;
    if s == 1 {
        // Rows of C channels: two passes, each accumulating across rows, vectorized over C.
        let rows_per_task = (MIN_TASK / c).max(1);
        let sums = sum_rows(x, c, rows_per_task, |acc, row| {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v.to_f64();
            }
        });
        let count = (x.len() / c) as f64;
        let mean: Vec<f64> = sums.iter().map(|v| v / count).collect();
        let m2 = sum_rows(x, c, rows_per_task, |acc, row| {
            for ((a, &v), &mu) in acc.iter_mut().zip(row).zip(&mean) {
                let centred = v.to_f64() - mu;
                *a += centred * centred;
            }
        });
        let var = m2.iter().map(|v| v / count).collect();
        return (mean, var);
    }
    // Runs of S values: moments of each run from cache, merged per channel.
    let runs_per_task = (MIN_TASK / s).max(1);
    let moments = x
        .par_chunks(s)
        .with_min_len(runs_per_task)
        .enumerate()
        .fold(
            || vec![Moments::default(); c],
            |mut acc, (run, values)| {
                let channel = run % c;
                acc[channel] = acc[channel].merge(simd(RunMoments(values)));
                acc
            },
        )
        .reduce(
            || vec![Moments::default(); c],
            |a, b| a.iter().zip(&b).map(|(a, b)| a.merge(*b)).collect(),
        );
    moments.iter().map(|m| (m.mean, m.m2 / m.count)).unzip()
}

/// Per-channel sums over the rows of `x: [R, C]`, `add(acc, row)` adding one row.
fn sum_rows<E: Real>(
    x: &[E],
    c: usize,
    rows_per_task: usize,
    add: impl Fn(&mut [f64], &[E]) + Sync,
) -> Vec<f64> {
    x.par_chunks(c)
        .with_min_len(rows_per_task)
        .fold(
            || vec![0.0; c],
            |mut acc, row| {
                add(&mut acc, row);
                acc
            },
        )
        .reduce(|| vec![0.0; c], add_vectors)
}

fn add_vectors(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (a, b) in a.iter_mut().zip(&b) {
        *a += b;
    }
    a
}

/// Per-channel `y = (x - mean) · scale + shift`, the coefficients in the input's precision.
pub(crate) struct ChannelAffine<E> {
    centre: Vec<Centre<E>>,
    scale: Vec<E>,
    shift: Vec<E>,
}

impl<E: Real> ChannelAffine<E> {
    pub(crate) fn new(mean: &[f64], scale: &[f64], shift: &[f64]) -> Self {
        Self {
            centre: mean.iter().map(|&m| Centre::new(m)).collect(),
            scale: scale.iter().map(|&v| E::from_f64(v)).collect(),
            shift: shift.iter().map(|&v| E::from_f64(v)).collect(),
        }
    }
}

/// Writes `out = affine(src)` for `src: [N, C, S]`; `src = None` transforms `out` in place.
pub(crate) fn apply_channel_affine<E: Real>(
    out: &mut [E],
    src: Option<&[E]>,
    d: ChannelDims,
    k: &ChannelAffine<E>,
) {
    let ChannelDims { c, s, .. } = d;
    let run = if s == 1 { c } else { s };
    out.par_chunks_mut(run)
        .with_min_len((MIN_TASK / run).max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let src = src.map(|src| &src[i * run..(i + 1) * run]);
            simd(AffineRun(out, src, k, (s > 1).then_some(i % c)));
        });
}

/// One task of [`apply_channel_affine`]: a row of `C` channels (`channel = None`), or the
/// run of `channel`.
struct AffineRun<'a, E>(
    &'a mut [E],
    Option<&'a [E]>,
    &'a ChannelAffine<E>,
    Option<usize>,
);

impl<E: Real> SimdKernel for AffineRun<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let AffineRun(out, src, k, channel) = self;
        affine_run(out, src, k, channel);
    }
}

#[inline(always)]
fn affine_run<E: Real>(
    out: &mut [E],
    src: Option<&[E]>,
    k: &ChannelAffine<E>,
    channel: Option<usize>,
) {
    match channel {
        Some(ch) => {
            let (centre, a, b) = (k.centre[ch], k.scale[ch], k.shift[ch]);
            map_run(out, src, |x| centre.apply(x) * a + b);
        }
        None => {
            let coefficients = k.centre.iter().zip(&k.scale).zip(&k.shift);
            match src {
                Some(src) => {
                    for ((o, &x), ((centre, &a), &b)) in out.iter_mut().zip(src).zip(coefficients) {
                        *o = centre.apply(x) * a + b;
                    }
                }
                None => {
                    for (o, ((centre, &a), &b)) in out.iter_mut().zip(coefficients) {
                        *o = centre.apply(*o) * a + b;
                    }
                }
            }
        }
    }
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

/// Per-channel sums of a backward over `[N, C, S]` tensors, about a given `mean`.
pub(crate) struct GradSums {
    /// `Σ dy`.
    pub dy: Vec<f64>,
    /// `Σ dy · (x - mean)`.
    pub dy_x: Vec<f64>,
    /// `Σ (x - mean)`: zero for the exact mean, so it corrects a mean rounded to `E`.
    pub x: Vec<f64>,
}

impl GradSums {
    fn zeros(c: usize) -> Self {
        Self {
            dy: vec![0.0; c],
            dy_x: vec![0.0; c],
            x: vec![0.0; c],
        }
    }

    fn add(mut self, other: Self) -> Self {
        self.dy = add_vectors(self.dy, other.dy);
        self.dy_x = add_vectors(self.dy_x, other.dy_x);
        self.x = add_vectors(self.x, other.x);
        self
    }

    /// Moves the centre from `mean` to the exact mean `mean + Σ(x - mean)/m`: returns it and
    /// turns `dy_x` into `Σ dy · (x - exact mean)`.
    pub(crate) fn recentre(&mut self, mean: &[f64], m: f64) -> Vec<f64> {
        (0..mean.len())
            .map(|ch| {
                let shift = self.x[ch] / m;
                self.dy_x[ch] -= shift * self.dy[ch];
                mean[ch] + shift
            })
            .collect()
    }
}

/// Per-channel [`GradSums`] of `[N, C, S]` tensors about `mean`, whose values must be values
/// of `E` (the statistics a forward saved are).
pub(crate) fn channel_grad_sums<E: Real>(
    x: &[E],
    dy: &[E],
    mean: &[f64],
    d: ChannelDims,
) -> GradSums {
    let ChannelDims { c, s, .. } = d;
    if s == 1 {
        let rows_per_task = (MIN_TASK / c).max(1);
        let pairs = x
            .par_chunks(c)
            .zip(dy.par_chunks(c))
            .with_min_len(rows_per_task);
        return pairs
            .fold(
                || GradSums::zeros(c),
                |mut sums, (x, dy)| {
                    let lanes = sums
                        .dy
                        .iter_mut()
                        .zip(sums.dy_x.iter_mut())
                        .zip(&mut sums.x);
                    for (((s1, s2), s0), ((&x, &g), &mu)) in lanes.zip(x.iter().zip(dy).zip(mean)) {
                        let (g, centred) = (g.to_f64(), x.to_f64() - mu);
                        *s1 += g;
                        *s2 += g * centred;
                        *s0 += centred;
                    }
                    sums
                },
            )
            .reduce(|| GradSums::zeros(c), GradSums::add);
    }
    let runs_per_task = (MIN_TASK / s).max(1);
    let centres: Vec<Centre<E>> = mean.iter().map(|&m| Centre::new(m)).collect();
    x.par_chunks(s)
        .zip(dy.par_chunks(s))
        .with_min_len(runs_per_task)
        .enumerate()
        .fold(
            || GradSums::zeros(c),
            |mut sums, (run, (x, dy))| {
                let channel = run % c;
                let (s1, s2, s0) = simd(GradRunSums(x, dy, centres[channel]));
                sums.dy[channel] += s1;
                sums.dy_x[channel] += s2;
                sums.x[channel] += s0;
                sums
            },
        )
        .reduce(|| GradSums::zeros(c), GradSums::add)
}

/// `(Σ dy, Σ dy·c, Σ c)` over one run, `c` the centred `x`.
struct GradRunSums<'a, E>(&'a [E], &'a [E], Centre<E>);

impl<E: Real> SimdKernel for GradRunSums<'_, E> {
    type Output = (f64, f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64, f64) {
        let GradRunSums(x, dy, centre) = self;
        // The mean is a saved value of E (lo = 0): offsets are exact centrings.
        (
            sum_run(dy, |g| g),
            sum_run2(x, dy, |x, g| g * centre.offset(x)),
            sum_run(x, |x| centre.offset(x)),
        )
    }
}

/// Per-channel `dx = dy · k_dy + (x - mean) · k_x + k_0`, the coefficients in the input's
/// precision.
pub(crate) struct ChannelGrad<E> {
    centre: Vec<Centre<E>>,
    k_dy: Vec<E>,
    k_x: Vec<E>,
    k_0: Vec<E>,
}

impl<E: Real> ChannelGrad<E> {
    pub(crate) fn new(mean: &[f64], k_dy: &[f64], k_x: &[f64], k_0: &[f64]) -> Self {
        let cast = |v: &[f64]| v.iter().map(|&v| E::from_f64(v)).collect();
        Self {
            centre: mean.iter().map(|&m| Centre::new(m)).collect(),
            k_dy: cast(k_dy),
            k_x: cast(k_x),
            k_0: cast(k_0),
        }
    }
}

/// Writes `out = dx(x, dy)` per channel; `dy = None` means `out` holds `dy` (in place).
pub(crate) fn apply_channel_grad<E: Real>(
    out: &mut [E],
    x: &[E],
    dy: Option<&[E]>,
    d: ChannelDims,
    k: &ChannelGrad<E>,
) {
    let ChannelDims { c, s, .. } = d;
    let run = if s == 1 { c } else { s };
    out.par_chunks_mut(run)
        .with_min_len((MIN_TASK / run).max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let range = i * run..(i + 1) * run;
            let (x, dy) = (&x[range.clone()], dy.map(|dy| &dy[range]));
            simd(GradRun(out, x, dy, k, (s > 1).then_some(i % c)));
        });
}

/// One task of [`apply_channel_grad`]: a row of `C` channels (`channel = None`), or the run
/// of `channel`.
struct GradRun<'a, E>(
    &'a mut [E],
    &'a [E],
    Option<&'a [E]>,
    &'a ChannelGrad<E>,
    Option<usize>,
);

impl<E: Real> SimdKernel for GradRun<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let GradRun(out, x, dy, k, channel) = self;
        grad_run(out, x, dy, k, channel);
    }
}

#[inline(always)]
fn grad_run<E: Real>(
    out: &mut [E],
    x: &[E],
    dy: Option<&[E]>,
    k: &ChannelGrad<E>,
    channel: Option<usize>,
) {
    match channel {
        Some(ch) => {
            let centre = k.centre[ch];
            let (a, b, c0) = (k.k_dy[ch], k.k_x[ch], k.k_0[ch]);
            map_run2(out, x, dy, |x, g| g * a + centre.apply(x) * b + c0);
        }
        None => {
            let coefficients = (k.centre.iter().zip(&k.k_dy)).zip(k.k_x.iter().zip(&k.k_0));
            match dy {
                Some(dy) => {
                    for (((o, &x), &g), ((centre, &a), (&b, &c0))) in
                        out.iter_mut().zip(x).zip(dy).zip(coefficients)
                    {
                        *o = g * a + centre.apply(x) * b + c0;
                    }
                }
                None => {
                    for ((o, &x), ((centre, &a), (&b, &c0))) in
                        out.iter_mut().zip(x).zip(coefficients)
                    {
                        *o = *o * a + centre.apply(x) * b + c0;
                    }
                }
            }
        }
    }
}

/// Shape of a per-row (GroupNorm) view: `N·G` rows of `k = (C/G)·s` values, the channels of
/// row `r` being `(r % groups)·(C/G) ..`, each a run of `s` values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowDims {
    pub groups: usize,
    pub channels_per_group: usize,
    pub s: usize,
}

impl RowDims {
    fn k(self) -> usize {
        self.channels_per_group * self.s
    }

    fn channels(self) -> usize {
        self.groups * self.channels_per_group
    }

    /// The first channel of row `r`.
    fn first_channel(self, row: usize) -> usize {
        (row % self.groups) * self.channels_per_group
    }
}

/// Normalizes every row with its own mean and biased variance and applies the per-channel
/// `gamma`/`beta`; writes `out` and returns each row's `(mean, var)`. Each row is read from
/// memory once: its statistics and its output are computed while it sits in cache.
pub(crate) fn row_norm<E: Real>(
    out: &mut [E],
    x: &[E],
    d: RowDims,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let k = d.k();
    let cpg = d.channels_per_group;
    let gamma: Vec<E> = gamma.iter().map(|&v| E::from_f64(v)).collect();
    let beta: Vec<E> = beta.iter().map(|&v| E::from_f64(v)).collect();
    out.par_chunks_mut(k)
        .zip(x.par_chunks(k))
        .with_min_len((MIN_TASK / k).max(1))
        .enumerate()
        .map(|(row, (out, x))| {
            let channels = d.first_channel(row)..d.first_channel(row) + cpg;
            let affine = (&gamma[channels.clone()], &beta[channels]);
            simd(NormalizeRow(out, x, affine, d.s, eps))
        })
        .unzip()
}

/// One row of [`row_norm`]: its `(mean, var)`, and `out` normalized.
struct NormalizeRow<'a, E>(&'a mut [E], &'a [E], (&'a [E], &'a [E]), usize, f64);

impl<E: Real> SimdKernel for NormalizeRow<'_, E> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let NormalizeRow(out, x, (gamma, beta), s, eps) = self;
        normalize_row(out, x, gamma, beta, s, eps)
    }
}

#[inline(always)]
fn normalize_row<E: Real>(
    out: &mut [E],
    x: &[E],
    gamma: &[E],
    beta: &[E],
    s: usize,
    eps: f64,
) -> (f64, f64) {
    let moments = Moments::of(x);
    let var = moments.m2 / moments.count;
    let rstd = 1.0 / (var + eps).sqrt();
    let centre = Centre::<E>::new(moments.mean);
    if s == 1 {
        let r = E::from_f64(rstd);
        for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = centre.apply(x) * (r * g) + b;
        }
    } else {
        for (((out, x), &g), &b) in out.chunks_mut(s).zip(x.chunks(s)).zip(gamma).zip(beta) {
            let a = E::from_f64(rstd * g.to_f64());
            map_run(out, Some(x), |x| centre.apply(x) * a + b);
        }
    }
    (moments.mean, var)
}

/// One row's part of [`row_norm_backward`]: what it reads and what it adds to.
struct RowGrad<'a, E> {
    out: &'a mut [E],
    x: &'a [E],
    dy: Option<&'a [E]>,
    gamma: &'a [E],
    mean: f64,
    var: f64,
    eps: f64,
    s: usize,
    dgamma: &'a mut [f64],
    dbeta: &'a mut [f64],
}

/// The backward of [`row_norm`]: writes `dx` into `out` (`dy = None`: `out` holds `dy`) and
/// returns the per-channel `(dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn row_norm_backward<E: Real>(
    out: &mut [E],
    x: &[E],
    dy: Option<&[E]>,
    d: RowDims,
    gamma: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let k = d.k();
    let (cpg, c) = (d.channels_per_group, d.channels());
    let zeros = || (vec![0.0; c], vec![0.0; c]);
    let gamma: Vec<E> = gamma.iter().map(|&g| E::from_f64(g)).collect();
    out.par_chunks_mut(k)
        .zip(x.par_chunks(k))
        .with_min_len((MIN_TASK / k).max(1))
        .enumerate()
        .fold(zeros, |(mut dgamma, mut dbeta), (row, (out, x))| {
            let channels = d.first_channel(row)..d.first_channel(row) + cpg;
            let grad = RowGrad {
                out,
                x,
                dy: dy.map(|dy| &dy[row * k..(row + 1) * k]),
                gamma: &gamma[channels.clone()],
                mean: mean[row],
                var: var[row],
                eps,
                s: d.s,
                dgamma: &mut dgamma[channels.clone()],
                dbeta: &mut dbeta[channels],
            };
            simd(grad);
            (dgamma, dbeta)
        })
        .reduce(zeros, |a, b| (add_vectors(a.0, b.0), add_vectors(a.1, b.1)))
}

/// One row of [`row_norm_backward`], `g = dy·γ`: with `A = Σ γ dy / K` and
/// `B = Σ γ dy (x - μ) / K`, `dx = rγ dy - r A - r³ B (x - μ)`; each channel's `dγ` gains
/// `r Σ dy (x - μ)` and its `dβ` gains `Σ dy`.
impl<E: Real> SimdKernel for RowGrad<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        row_grad(self);
    }
}

#[inline(always)]
fn row_grad<E: Real>(g: RowGrad<'_, E>) {
    let RowGrad {
        out,
        x,
        dy,
        gamma,
        mean,
        var,
        eps,
        s,
        dgamma,
        dbeta,
    } = g;
    let k = x.len() as f64;
    // The saved mean was rounded to E: one pass over the row (in cache) restores it.
    let saved = Centre::<E>::new(mean);
    let mu = mean + sum_run(x, |v| saved.offset(v)) / k;
    let rstd = 1.0 / (var + eps).sqrt();
    let centre = Centre::<E>::new(mu);
    let grads: &[E] = match dy {
        Some(dy) => dy,
        None => out,
    };
    let (a, b) = if s == 1 {
        for ((dgm, dbt), (&xv, &g)) in dgamma
            .iter_mut()
            .zip(dbeta.iter_mut())
            .zip(x.iter().zip(grads))
        {
            let g = g.to_f64();
            *dgm += rstd * g * (centre.offset(xv).to_f64() - centre.lo());
            *dbt += g;
        }
        let a = sum_run2(grads, gamma, |g, gm| g * gm);
        let b = sum_run3(x, grads, gamma, |x, g, gm| g * gm * centre.offset(x));
        (a, b - centre.lo() * a)
    } else {
        let (mut a, mut b) = (0.0, 0.0);
        for (j, (x, g)) in x.chunks(s).zip(grads.chunks(s)).enumerate() {
            let s1 = sum_run(g, |g| g);
            let s2 = sum_run2(x, g, |x, g| g * centre.offset(x)) - centre.lo() * s1;
            a += gamma[j].to_f64() * s1;
            b += gamma[j].to_f64() * s2;
            dgamma[j] += rstd * s2;
            dbeta[j] += s1;
        }
        (a, b)
    };
    let k_x = E::from_f64(-rstd * rstd * rstd * b / k);
    let k_0 = E::from_f64(-rstd * a / k);
    let r = E::from_f64(rstd);
    if s == 1 {
        let k_dy = gamma.iter().map(|&g| r * g);
        match dy {
            Some(dy) => {
                for (((o, &x), &g), a) in out.iter_mut().zip(x).zip(dy).zip(k_dy) {
                    *o = g * a + centre.apply(x) * k_x + k_0;
                }
            }
            None => {
                for ((o, &x), a) in out.iter_mut().zip(x).zip(k_dy) {
                    *o = *o * a + centre.apply(x) * k_x + k_0;
                }
            }
        }
    } else {
        for (j, (out, x)) in out.chunks_mut(s).zip(x.chunks(s)).enumerate() {
            let dy = dy.map(|dy| &dy[j * s..(j + 1) * s]);
            let a = r * gamma[j];
            map_run2(out, x, dy, |x, g| g * a + centre.apply(x) * k_x + k_0);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each kernel against a direct f64 evaluation of its formula (the textbook algorithm,
    //! written out below) on odd shapes.

    use super::*;

    fn data(len: usize, seed: u64, offset: f64, spread: f64) -> Vec<f64> {
        // A small LCG: deterministic values in [-1, 1), scaled and shifted.
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                offset + spread * (2.0 * unit - 1.0)
            })
            .collect()
    }

    fn reference_channel_moments(x: &[f64], d: ChannelDims) -> (Vec<f64>, Vec<f64>) {
        let values =
            |ch: usize| (0..d.n).flat_map(move |n| (0..d.s).map(move |s| (n * d.c + ch) * d.s + s));
        (0..d.c)
            .map(|ch| {
                let m = (d.n * d.s) as f64;
                let mean = values(ch).map(|i| x[i]).sum::<f64>() / m;
                let var = values(ch).map(|i| (x[i] - mean).powi(2)).sum::<f64>() / m;
                (mean, var)
            })
            .unzip()
    }

    #[track_caller]
    fn assert_all_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "index {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn channel_moments_match_the_definition_at_every_layout() {
        for (n, c, s) in [(2, 1, 1), (5, 3, 1), (2, 3, 7), (3, 2, 1000), (1, 4, 2)] {
            let d = ChannelDims { n, c, s };
            let x = data(n * c * s, 1, 0.5, 2.0);
            let (mean, var) = channel_moments(&x, d);
            let (want_mean, want_var) = reference_channel_moments(&x, d);
            assert_all_close(&mean, &want_mean, 1e-13);
            assert_all_close(&var, &want_var, 1e-12);
        }
    }

    #[test]
    fn runs_whose_first_values_are_far_from_their_mean_are_re_centred() {
        // Each run of 1000 starts with 16 zeros and goes on near 1e4: the pivot (the mean of
        // the first 16 values) is 0, eight standard deviations from the mean, so the second
        // pass re-centres. Both passes sum in f32 lanes (64 terms each here), which bounds the
        // variance's accuracy to a few 1e-6.
        let d = ChannelDims {
            n: 2,
            c: 2,
            s: 1000,
        };
        let x32: Vec<f32> = (0..d.n * d.c * d.s)
            .map(|i| match i % d.s < 16 {
                true => 0.0,
                false => 1e4 + (i % 7) as f32 * 0.25,
            })
            .collect();
        let exact: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let (mean, var) = channel_moments(&x32, d);
        let (want_mean, want_var) = reference_channel_moments(&exact, d);
        assert_all_close(&mean, &want_mean, 1e-12);
        assert_all_close(&var, &want_var, 1e-5);
    }

    #[test]
    fn f32_moments_of_a_large_mean_keep_their_digits() {
        // x = 1e4 + small spread: one-pass Σx² - (Σx)²/m would lose every digit in f32 and
        // most in f64; the centred moments stay exact to f64 rounding of the f32 inputs.
        let d = ChannelDims {
            n: 4096,
            c: 1,
            s: 1,
        };
        let x64 = data(4096, 7, 1e4, 1.0);
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let exact: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let (mean, var) = channel_moments(&x32, d);
        let (want_mean, want_var) = reference_channel_moments(&exact, d);
        assert_all_close(&mean, &want_mean, 1e-14);
        assert_all_close(&var, &want_var, 1e-10);
    }

    #[test]
    fn channel_gradients_in_place_and_out_of_place_agree_with_the_formula() {
        for (n, c, s) in [(2, 1, 1), (3, 5, 1), (2, 3, 9)] {
            let d = ChannelDims { n, c, s };
            let x = data(n * c * s, 2, 1.0, 1.0);
            let dy = data(n * c * s, 3, 0.0, 1.0);
            let (mean, _) = channel_moments(&x, d);
            let sums = channel_grad_sums(&x, &dy, &mean, d);
            let (s1, s2) = (&sums.dy, &sums.dy_x);
            let k = ChannelGrad::<f64>::new(&mean, &vec![2.0; c], &vec![-0.5; c], &vec![0.25; c]);
            let mut out = vec![0.0; x.len()];
            apply_channel_grad(&mut out, &x, Some(&dy), d, &k);
            let mut in_place = dy.clone();
            apply_channel_grad(&mut in_place, &x, None, d, &k);
            assert_eq!(out, in_place);
            for ch in 0..c {
                let idx: Vec<usize> = (0..n)
                    .flat_map(|i| (0..s).map(move |j| (i * c + ch) * s + j))
                    .collect();
                let want_s1: f64 = idx.iter().map(|&i| dy[i]).sum();
                let want_s2: f64 = idx.iter().map(|&i| dy[i] * (x[i] - mean[ch])).sum();
                assert_all_close(&[s1[ch], s2[ch]], &[want_s1, want_s2], 1e-12);
                for &i in &idx {
                    let want = dy[i] * 2.0 - 0.5 * (x[i] - mean[ch]) + 0.25;
                    assert_all_close(&[out[i]], &[want], 1e-14);
                }
            }
        }
    }

    #[test]
    fn row_norm_and_its_backward_match_the_formula() {
        // GroupNorm-like (s > 1) and LayerNorm-like (s = 1) rows, per-channel affine.
        for (rows, groups, cpg, s) in [(6, 3, 2, 5), (4, 1, 7, 1), (2, 2, 1, 3)] {
            let d = RowDims {
                groups,
                channels_per_group: cpg,
                s,
            };
            let (k, c) = (cpg * s, groups * cpg);
            let x = data(rows * k, 4, -2.0, 3.0);
            let dy = data(rows * k, 5, 0.1, 1.0);
            let gamma = data(c, 6, 1.0, 0.5);
            let beta = data(c, 8, 0.0, 0.5);
            let eps = 1e-5;
            let mut y = vec![0.0; x.len()];
            let (mean, var) = row_norm(&mut y, &x, d, &gamma, &beta, eps);
            let mut dx = dy.clone();
            let (dgamma, dbeta) = row_norm_backward(&mut dx, &x, None, d, &gamma, &mean, &var, eps);
            let mut want_dgamma = vec![0.0; c];
            let mut want_dbeta = vec![0.0; c];
            for r in 0..rows {
                let row = &x[r * k..(r + 1) * k];
                let mu = row.iter().sum::<f64>() / k as f64;
                let v = row.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / k as f64;
                assert_all_close(&[mean[r], var[r]], &[mu, v], 1e-13);
                let rstd = 1.0 / (v + eps).sqrt();
                let channel = |j: usize| (r % groups) * cpg + j / s;
                // x̂, g = dy·γ, dx = r (g - mean(g) - x̂ mean(g x̂)).
                let xhat: Vec<f64> = row.iter().map(|x| (x - mu) * rstd).collect();
                let g: Vec<f64> = (0..k).map(|j| dy[r * k + j] * gamma[channel(j)]).collect();
                let mean_g = g.iter().sum::<f64>() / k as f64;
                let mean_gx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / k as f64;
                for j in 0..k {
                    let i = r * k + j;
                    let want_y = xhat[j] * gamma[channel(j)] + beta[channel(j)];
                    let want_dx = rstd * (g[j] - mean_g - xhat[j] * mean_gx);
                    assert_all_close(&[y[i], dx[i]], &[want_y, want_dx], 1e-12);
                    want_dgamma[channel(j)] += dy[i] * xhat[j];
                    want_dbeta[channel(j)] += dy[i];
                }
            }
            assert_all_close(&dgamma, &want_dgamma, 1e-12);
            assert_all_close(&dbeta, &want_dbeta, 1e-12);
            let mut out_of_place = vec![0.0; x.len()];
            row_norm_backward(
                &mut out_of_place,
                &x,
                Some(&dy),
                d,
                &gamma,
                &mean,
                &var,
                eps,
            );
            assert_eq!(out_of_place, dx);
        }
    }
}
