//! BatchNorm's backward kernels: the per-channel sums of `dy` and `dy·(x - μ)`, and
//! `dx = dy·k_dy + (x - μ)·k_x + k_0` from them.

use super::channel::{ChannelAffine, ChannelDims};
use super::shares::{Shares, on_threads};
use super::{Centre, Real, SimdKernel, add_vectors, lanes, map_run2, simd};

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
