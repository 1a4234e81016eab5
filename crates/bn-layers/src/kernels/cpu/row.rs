//! The row kernels of GroupNorm, InstanceNorm and LayerNorm: statistics per row of `K`
//! contiguous values, each row read from memory once.

use rayon::prelude::*;

use super::{
    Centre, MIN_TASK, Moments, Real, SimdKernel, add_vectors, lanes, map_run, map_run2, simd,
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
    fn run<S: pulp::Simd>(self, simd: S) -> (f64, f64) {
        let NormalizeRow(out, x, (gamma, beta), s, eps) = self;
        normalize_row(simd, out, x, gamma, beta, s, eps)
    }
}

#[inline(always)]
fn normalize_row<S: pulp::Simd, E: Real>(
    simd: S,
    out: &mut [E],
    x: &[E],
    gamma: &[E],
    beta: &[E],
    s: usize,
    eps: f64,
) -> (f64, f64) {
    let moments = Moments::of(simd, x);
    let var = moments.m2 / moments.count;
    let rstd = 1.0 / (var + eps).sqrt();
    let centre = Centre::<E>::new(moments.mean);
    if s == 1 {
        let r = E::from_f64(rstd);
        for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = centre.apply(x).mul_add(r * g, b);
        }
    } else {
        for (((out, x), &g), &b) in out.chunks_mut(s).zip(x.chunks(s)).zip(gamma).zip(beta) {
            let affine = centre.affine(rstd * g.to_f64(), b.to_f64());
            map_run(out, Some(x), |x| affine.apply(x));
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
    dgamma: &'a mut [E],
    dbeta: &'a mut [E],
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
    let c = d.channels();
    let rows_per_task = (MIN_TASK / d.k()).max(1);
    let chunk = d.k() * rows_per_task;
    let gamma: Vec<E> = gamma.iter().map(|&g| E::from_f64(g)).collect();
    out.par_chunks_mut(chunk)
        .enumerate()
        .map(|(task, out)| {
            let values = task * chunk..task * chunk + out.len();
            simd(RowGradTask {
                out,
                x: &x[values.clone()],
                dy: dy.map(|dy| &dy[values]),
                first_row: task * rows_per_task,
                d,
                gamma: &gamma,
                mean,
                var,
                eps,
            })
        })
        .reduce(
            || (vec![0.0; c], vec![0.0; c]),
            |a, b| (add_vectors(a.0, b.0), add_vectors(a.1, b.1)),
        )
}

/// The rows of one task of [`row_norm_backward`], from `first_row` on: one SIMD dispatch
/// for all of them, `dγ` and `dβ` summed over the task's rows in the input's precision (a
/// task has at most a few hundred rows) and across tasks in `f64`.
struct RowGradTask<'a, E> {
    out: &'a mut [E],
    x: &'a [E],
    dy: Option<&'a [E]>,
    first_row: usize,
    d: RowDims,
    gamma: &'a [E],
    mean: &'a [f64],
    var: &'a [f64],
    eps: f64,
}

impl<E: Real> SimdKernel for RowGradTask<'_, E> {
    type Output = (Vec<f64>, Vec<f64>);
    #[inline(always)]
    fn run<S: pulp::Simd>(self, simd: S) -> (Vec<f64>, Vec<f64>) {
        let (k, cpg) = (self.d.k(), self.d.channels_per_group);
        let zero = E::from_f64(0.0);
        let (mut dgamma, mut dbeta) =
            (vec![zero; self.d.channels()], vec![zero; self.d.channels()]);
        for (i, (out, x)) in self.out.chunks_mut(k).zip(self.x.chunks(k)).enumerate() {
            let row = self.first_row + i;
            let first = self.d.first_channel(row);
            let channels = first..first + cpg;
            row_grad(
                simd,
                RowGrad {
                    out,
                    x,
                    dy: self.dy.map(|dy| &dy[i * k..(i + 1) * k]),
                    gamma: &self.gamma[channels.clone()],
                    mean: self.mean[row],
                    var: self.var[row],
                    eps: self.eps,
                    s: self.d.s,
                    dgamma: &mut dgamma[channels.clone()],
                    dbeta: &mut dbeta[channels],
                },
            );
        }
        let wide = |v: Vec<E>| v.iter().map(|v| v.to_f64()).collect();
        (wide(dgamma), wide(dbeta))
    }
}

/// One row of [`row_norm_backward`], `g = dy·γ`: with `A = Σ γ dy / K` and
/// `B = Σ γ dy (x - μ) / K`, `dx = rγ dy - r A - r³ B (x - μ)`; each channel's `dγ` gains
/// `r Σ dy (x - μ)` and its `dβ` gains `Σ dy`.
#[inline(always)]
fn row_grad<S: pulp::Simd, E: Real>(simd: S, g: RowGrad<'_, E>) {
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
    let mu = mean + lanes::centred_sums(simd, x, saved).0 / k;
    let rstd = 1.0 / (var + eps).sqrt();
    let centre = Centre::<E>::new(mu);
    let grads: &[E] = match dy {
        Some(dy) => dy,
        None => out,
    };
    let r = E::from_f64(rstd);
    let (a, b) = if s == 1 {
        for ((dgm, dbt), (&xv, &g)) in dgamma
            .iter_mut()
            .zip(dbeta.iter_mut())
            .zip(x.iter().zip(grads))
        {
            *dgm = *dgm + r * g * centre.apply(xv);
            *dbt = *dbt + g;
        }
        let (a, b) = lanes::weighted_grad_sums(simd, x, grads, gamma, centre);
        (a, b - centre.lo() * a)
    } else {
        let (mut a, mut b) = (0.0, 0.0);
        for (j, (x, g)) in x.chunks(s).zip(grads.chunks(s)).enumerate() {
            let (s1, s2, _) = lanes::grad_sums(simd, x, g, centre);
            let s2 = s2 - centre.lo() * s1;
            a += gamma[j].to_f64() * s1;
            b += gamma[j].to_f64() * s2;
            dgamma[j] = dgamma[j] + E::from_f64(rstd * s2);
            dbeta[j] = dbeta[j] + E::from_f64(s1);
        }
        (a, b)
    };
    // dx = dy·γr + (x - μ)·k_x + k_0.
    let centred = centre.affine(-rstd * rstd * rstd * b / k, -rstd * a / k);
    if s == 1 {
        let k_dy = gamma.iter().map(|&g| r * g);
        match dy {
            Some(dy) => {
                for (((o, &x), &g), a) in out.iter_mut().zip(x).zip(dy).zip(k_dy) {
                    *o = g.mul_add(a, centred.apply(x));
                }
            }
            None => {
                for ((o, &x), a) in out.iter_mut().zip(x).zip(k_dy) {
                    *o = o.mul_add(a, centred.apply(x));
                }
            }
        }
    } else {
        for (j, (out, x)) in out.chunks_mut(s).zip(x.chunks(s)).enumerate() {
            let dy = dy.map(|dy| &dy[j * s..(j + 1) * s]);
            let a = r * gamma[j];
            map_run2(out, x, dy, |x, g| g.mul_add(a, centred.apply(x)));
        }
    }
}
