//! BatchNorm's forward kernels: statistics per channel of `[N, C, S]`, gathered from the `N`
//! runs of `S` values each channel owns (rows of `C` values when `S = 1`), and the per-channel
//! affine map; the backward is in [`channel_grad`](super::channel_grad).

use super::activation::relu;
use super::shares::{Shares, on_threads};
use super::{Affine, Centre, Moments, Real, SimdKernel, add_vectors, map_run, simd};
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
    pub(super) fn channel(&self, ch: usize) -> Affine<E> {
        Affine {
            hi: self.hi[ch],
            scale: self.scale[ch],
            shift: self.shift[ch],
        }
    }

    /// Every channel's map in order, for a row of `C` channels.
    #[inline(always)]
    pub(super) fn channels(&self) -> impl Iterator<Item = Affine<E>> + '_ {
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
