//! BatchNorm's kernels: statistics per channel of `[N, C, S]`, gathered from the `N` runs of
//! `S` values each channel owns (rows of `C` values when `S = 1`).

use rayon::prelude::*;

use super::{
    Centre, MIN_TASK, Moments, Real, RunMoments, SimdKernel, add_vectors, map_run, map_run2, simd,
    sum_run, sum_run2,
};

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
