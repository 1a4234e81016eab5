//! BatchNorm's kernels: statistics per channel of `[N, C, S]`, gathered from the `N` runs of
//! `S` values each channel owns (rows of `C` values when `S = 1`).

use super::activation::relu;
use super::shares::{Shares, on_threads};
use super::{
    Affine, Centre, Moments, Real, SimdKernel, add_vectors, lanes, map_run, map_run2, simd,
};
use crate::Activation;

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
        let sums = sum_rows(x, c, |acc, row| {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v.to_f64();
            }
        });
        let count = (x.len() / c) as f64;
        let mean: Vec<f64> = sums.iter().map(|v| v / count).collect();
        let m2 = sum_rows(x, c, |acc, row| {
            for ((a, &v), &mu) in acc.iter_mut().zip(row).zip(&mean) {
                let centred = v.to_f64() - mu;
                *a += centred * centred;
            }
        });
        let var = m2.iter().map(|v| v / count).collect();
        return (mean, var);
    }
    // Runs of S values: moments of each run from cache, merged per channel.
    let shares = Shares::new(x.len() / s, s);
    let moments = on_threads(x.chunks(shares.len()).collect(), |i, values| {
        simd(TaskMoments(values, shares.first_unit(i), s, c))
    })
    .into_iter()
    .reduce(|a, b| a.iter().zip(&b).map(|(a, b)| a.merge(*b)).collect())
    .unwrap_or_else(|| vec![Moments::default(); c]);
    moments.iter().map(|m| (m.mean, m.m2 / m.count)).unzip()
}

/// One share of [`channel_moments`]: the runs of `S` values from `first_run` on, merged per
/// channel.
struct TaskMoments<'a, E>(&'a [E], usize, usize, usize);

impl<E: Real> SimdKernel for TaskMoments<'_, E> {
    type Output = Vec<Moments>;
    #[inline(always)]
    fn run<S: pulp::Simd>(self, simd: S) -> Vec<Moments> {
        let TaskMoments(values, first_run, s, c) = self;
        let mut acc = vec![Moments::default(); c];
        for (i, run) in values.chunks(s).enumerate() {
            let channel = (first_run + i) % c;
            acc[channel] = acc[channel].merge(Moments::of(simd, run));
        }
        acc
    }
}

/// Per-channel sums over the rows of `x: [R, C]`, `add(acc, row)` adding one row.
fn sum_rows<E: Real>(x: &[E], c: usize, add: impl Fn(&mut [f64], &[E]) + Sync) -> Vec<f64> {
    let shares = Shares::new(x.len() / c, c);
    on_threads(x.chunks(shares.len()).collect(), |_, rows| {
        let mut acc = vec![0.0; c];
        for row in rows.chunks(c) {
            add(&mut acc, row);
        }
        acc
    })
    .into_iter()
    .fold(vec![0.0; c], add_vectors)
}

/// Per-channel `y = f((x - mean) · scale + shift)`, the coefficients in the input's
/// precision, `f` an activation or the identity.
pub(crate) struct ChannelAffine<E> {
    /// One per channel, as separate vectors so a row of channels loads each contiguously.
    hi: Vec<E>,
    scale: Vec<E>,
    shift: Vec<E>,
    activation: Option<Activation>,
}

impl<E: Real> ChannelAffine<E> {
    pub(crate) fn new(
        mean: &[f64],
        scale: &[f64],
        shift: &[f64],
        activation: Option<Activation>,
    ) -> Self {
        let affine: Vec<Affine<E>> = (mean.iter().zip(scale).zip(shift))
            .map(|((&m, &a), &b)| Centre::new(m).affine(a, b))
            .collect();
        Self {
            hi: affine.iter().map(|t| t.hi).collect(),
            scale: affine.iter().map(|t| t.scale).collect(),
            shift: affine.iter().map(|t| t.shift).collect(),
            activation,
        }
    }

    #[inline(always)]
    fn channel(&self, ch: usize) -> Affine<E> {
        Affine {
            hi: self.hi[ch],
            scale: self.scale[ch],
            shift: self.shift[ch],
        }
    }

    /// Every channel's map in order, for a row of `C` channels.
    #[inline(always)]
    fn channels(&self) -> impl Iterator<Item = Affine<E>> + '_ {
        (self.hi.iter().zip(&self.scale).zip(&self.shift)).map(|((&hi, &scale), &shift)| Affine {
            hi,
            scale,
            shift,
        })
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
    let shares = Shares::new(out.len() / run, run);
    let len = shares.len();
    let parts = (out.chunks_mut(len).enumerate())
        .map(|(i, out)| (src.map(|src| &src[i * len..][..out.len()]), out))
        .collect();
    on_threads(parts, |i, (src, out)| {
        let channels = (s > 1).then_some(c);
        simd(AffineTask(out, src, k, shares.first_unit(i), run, channels));
    });
}

/// One share of [`apply_channel_affine`]: runs from `first_run` on, each a row of `C`
/// channels (`channels = None`) or the run of channel `run_index % C`. A share of short runs
/// (a few dozen values each) pays one SIMD dispatch, not one per run.
struct AffineTask<'a, E>(
    &'a mut [E],
    Option<&'a [E]>,
    &'a ChannelAffine<E>,
    usize,
    usize,
    Option<usize>,
);

impl<E: Real> SimdKernel for AffineTask<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<S: pulp::Simd>(self, _: S) {
        // One copy of the loops per activation, each with `f` inlined (and vectorized).
        match self.2.activation {
            None => self.run_with(|z| z),
            Some(Activation::Relu) => self.run_with(relu),
            Some(Activation::Sigmoid) => self.run_with(E::sigmoid),
        }
    }
}

impl<E: Real> AffineTask<'_, E> {
    #[inline(always)]
    fn run_with(self, f: impl Fn(E) -> E + Copy) {
        let AffineTask(out, src, k, first_run, run, channels) = self;
        for (i, out) in out.chunks_mut(run).enumerate() {
            let src = src.map(|src| &src[i * run..][..out.len()]);
            affine_run(out, src, k, channels.map(|c| (first_run + i) % c), f);
        }
    }
}

#[inline(always)]
fn affine_run<E: Real>(
    out: &mut [E],
    src: Option<&[E]>,
    k: &ChannelAffine<E>,
    channel: Option<usize>,
    f: impl Fn(E) -> E + Copy,
) {
    match channel {
        Some(ch) => {
            let affine = k.channel(ch);
            map_run(out, src, |x| f(affine.apply(x)));
        }
        None => match src {
            Some(src) => {
                for ((o, &x), affine) in out.iter_mut().zip(src).zip(k.channels()) {
                    *o = f(affine.apply(x));
                }
            }
            None => {
                for (o, affine) in out.iter_mut().zip(k.channels()) {
                    *o = f(affine.apply(*o));
                }
            }
        },
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
    let run = if s == 1 { c } else { s };
    let shares = Shares::new(x.len() / run, run);
    let parts = x
        .chunks(shares.len())
        .zip(dy.chunks(shares.len()))
        .collect();
    if s == 1 {
        return on_threads(parts, |_, (x, dy)| {
            let mut sums = GradSums::zeros(c);
            for (x, dy) in x.chunks(c).zip(dy.chunks(c)) {
                let lanes = (sums.dy.iter_mut())
                    .zip(sums.dy_x.iter_mut())
                    .zip(&mut sums.x);
                for (((s1, s2), s0), ((&x, &g), &mu)) in lanes.zip(x.iter().zip(dy).zip(mean)) {
                    let (g, centred) = (g.to_f64(), x.to_f64() - mu);
                    *s1 += g;
                    *s2 += g * centred;
                    *s0 += centred;
                }
            }
            sums
        })
        .into_iter()
        .fold(GradSums::zeros(c), GradSums::add);
    }
    let centres: Vec<Centre<E>> = mean.iter().map(|&m| Centre::new(m)).collect();
    on_threads(parts, |i, (x, dy)| {
        simd(TaskGradSums(x, dy, &centres, shares.first_unit(i), s))
    })
    .into_iter()
    .fold(GradSums::zeros(c), GradSums::add)
}

/// One share of [`channel_grad_sums`]: the runs of `S` values from `first_run` on.
struct TaskGradSums<'a, E>(&'a [E], &'a [E], &'a [Centre<E>], usize, usize);

impl<E: Real> SimdKernel for TaskGradSums<'_, E> {
    type Output = GradSums;
    #[inline(always)]
    fn run<S: pulp::Simd>(self, simd: S) -> GradSums {
        let TaskGradSums(x, dy, centres, first_run, s) = self;
        let c = centres.len();
        let mut sums = GradSums::zeros(c);
        for (i, (x, dy)) in x.chunks(s).zip(dy.chunks(s)).enumerate() {
            let channel = (first_run + i) % c;
            let (s1, s2, s0) = lanes::grad_sums(simd, x, dy, centres[channel]);
            sums.dy[channel] += s1;
            sums.dy_x[channel] += s2;
            sums.x[channel] += s0;
        }
        sums
    }
}

/// Per-channel `dx = dy · k_dy + (x - mean) · k_x + k_0`, the coefficients in the input's
/// precision.
pub(crate) struct ChannelGrad<E> {
    k_dy: Vec<E>,
    /// `(x - mean) · k_x + k_0`, as [`ChannelAffine`] keeps its coefficients.
    centred: ChannelAffine<E>,
}

impl<E: Real> ChannelGrad<E> {
    pub(crate) fn new(mean: &[f64], k_dy: &[f64], k_x: &[f64], k_0: &[f64]) -> Self {
        Self {
            k_dy: k_dy.iter().map(|&v| E::from_f64(v)).collect(),
            centred: ChannelAffine::new(mean, k_x, k_0, None),
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
    let shares = Shares::new(out.len() / run, run);
    let parts = shares.split(out, x, dy);
    on_threads(parts, |i, (x, dy, out)| {
        let channels = (s > 1).then_some(c);
        simd(GradTask(out, x, dy, k, shares.first_unit(i), run, channels));
    });
}

/// One share of [`apply_channel_grad`], as [`AffineTask`].
struct GradTask<'a, E>(
    &'a mut [E],
    &'a [E],
    Option<&'a [E]>,
    &'a ChannelGrad<E>,
    usize,
    usize,
    Option<usize>,
);

impl<E: Real> SimdKernel for GradTask<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<S: pulp::Simd>(self, _: S) {
        let GradTask(out, x, dy, k, first_run, run, channels) = self;
        for (i, out) in out.chunks_mut(run).enumerate() {
            let range = i * run..i * run + out.len();
            let (x, dy) = (&x[range.clone()], dy.map(|dy| &dy[range]));
            grad_run(out, x, dy, k, channels.map(|c| (first_run + i) % c));
        }
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
            let (a, centred) = (k.k_dy[ch], k.centred.channel(ch));
            map_run2(out, x, dy, |x, g| g.mul_add(a, centred.apply(x)));
        }
        None => {
            let coefficients = k.k_dy.iter().zip(k.centred.channels());
            match dy {
                Some(dy) => {
                    for (((o, &x), &g), (&a, centred)) in
                        out.iter_mut().zip(x).zip(dy).zip(coefficients)
                    {
                        *o = g.mul_add(a, centred.apply(x));
                    }
                }
                None => {
                    for ((o, &x), (&a, centred)) in out.iter_mut().zip(x).zip(coefficients) {
                        *o = o.mul_add(a, centred.apply(x));
                    }
                }
            }
        }
    }
}
