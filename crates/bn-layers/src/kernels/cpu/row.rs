//! The row kernels of GroupNorm, InstanceNorm and LayerNorm: statistics per row of `K`
//! contiguous values, each row read from memory once.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::{
    Centre, FillBlock, MIN_TASK, Moments, Real, SimdKernel, add_vectors, for_each_piece, fresh,
    map_run, map_run2, simd, sum_run, sum_run2, sum_run3,
};

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
/// `gamma`/`beta`: returns the output and each row's `(mean, var)`. Each row is read from
/// memory once: the first block of it to be written computes its statistics, while the row
/// then sits in cache for its blocks.
pub(crate) fn row_norm<E: Real>(
    x: &[E],
    d: RowDims,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<E>, Vec<f64>, Vec<f64>) {
    let rows = x.len().checked_div(d.k()).unwrap_or(0);
    let stats: Vec<OnceLock<(f64, f64)>> = (0..rows).map(|_| OnceLock::new()).collect();
    let fill = RowFill {
        x,
        d,
        gamma: gamma.iter().map(|&v| E::from_f64(v)).collect(),
        beta: beta.iter().map(|&v| E::from_f64(v)).collect(),
        eps,
        stats: &stats,
    };
    let out = fresh(x.len(), &fill);
    let (mean, var) = (stats.into_iter())
        .map(|row| row.into_inner().expect("each row has a block"))
        .unzip();
    (out, mean, var)
}

/// [`row_norm`]'s blocks, and the statistics of the rows they reach.
struct RowFill<'a, E> {
    x: &'a [E],
    d: RowDims,
    gamma: Vec<E>,
    beta: Vec<E>,
    eps: f64,
    stats: &'a [OnceLock<(f64, f64)>],
}

impl<E: Real> FillBlock<E> for RowFill<'_, E> {
    #[inline(always)]
    fn fill(&self, start: usize, out: &mut [E]) {
        let (k, s) = (self.d.k(), self.d.s);
        for_each_piece(start, out, k, |row, offset, out| {
            let x = &self.x[row * k..(row + 1) * k];
            let (mean, var) = *self.stats[row].get_or_init(|| {
                let moments = Moments::of(x);
                (moments.mean, moments.m2 / moments.count)
            });
            let rstd = 1.0 / (var + self.eps).sqrt();
            let centre = Centre::<E>::new(mean);
            let x = &x[offset..][..out.len()];
            let first = self.d.first_channel(row);
            if s == 1 {
                let channels = first + offset..;
                let affine = self.gamma[channels.clone()]
                    .iter()
                    .zip(&self.beta[channels]);
                let r = E::from_f64(rstd);
                for ((o, &x), (&g, &b)) in out.iter_mut().zip(x).zip(affine) {
                    *o = centre.apply(x) * (r * g) + b;
                }
            } else {
                for_each_piece(offset, out, s, |j, at, out| {
                    let x = &x[j * s + at - offset..][..out.len()];
                    let (g, b) = (self.gamma[first + j], self.beta[first + j]);
                    let a = E::from_f64(rstd * g.to_f64());
                    map_run(out, Some(x), |x| centre.apply(x) * a + b);
                });
            }
        });
    }
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
