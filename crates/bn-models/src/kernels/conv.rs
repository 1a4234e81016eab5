//! The backward of a 2-D convolution with stride 1, no padding, no dilation and one group, on
//! contiguous NCHW slices: the weight and bias gradients, and the input gradient when it is
//! wanted.
//!
//! With `r = (c, i, j)` a weight position and `p = (y, x)` an output position, the im2col
//! view of a sample is `col[r][p] = x[c][y + i][x + j]`, and
//! - `dW[o][r] = Σ_samples Σ_p dy[o][p] · col[r][p]` (long dot products over `p`),
//! - `db[o] = Σ_samples Σ_p dy[o][p]`,
//! - `dx = col2im(Wᵀ · dy)`: `dcol[r][p] = Σ_o W[o][r] · dy[o][p]`, added back at
//!   `x[c][y + i][x + j]`.
//!
//! Samples are split across rayon's pool, one task per thread; each task works through its
//! samples a few at a time (so every dot product is at least [`MIN_DOT`] long) in buffers it
//! allocates once, sums `dW` and `db` in `f64`, and writes its own samples' `dx`.

use std::ops::{Add, Mul};

use rayon::prelude::*;

/// Shortest dot product worth its final lane reduction.
const MIN_DOT: usize = 512;

/// Independent accumulators in a dot product, so it vectorizes.
const LANES: usize = 16;

/// The float types the kernels compute in.
pub(super) trait Real:
    Copy + Send + Sync + Default + Add<Output = Self> + Mul<Output = Self>
{
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// Shapes of a convolution: input `[n, ci, h, w]`, weight `[co, ci, kh, kw]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvDims {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
}

impl ConvDims {
    fn oh(self) -> usize {
        self.h + 1 - self.kh
    }
    fn ow(self) -> usize {
        self.w + 1 - self.kw
    }
    /// Output positions per channel.
    fn positions(self) -> usize {
        self.oh() * self.ow()
    }
    /// Weight positions per output channel.
    fn taps(self) -> usize {
        self.ci * self.kh * self.kw
    }
    fn input_len(self) -> usize {
        self.ci * self.h * self.w
    }
    fn output_len(self) -> usize {
        self.co * self.positions()
    }
    /// Samples handled together so that each dot product spans at least [`MIN_DOT`] values.
    fn batch(self) -> usize {
        MIN_DOT.div_ceil(self.positions().max(1)).max(1)
    }
}

/// The gradients of a convolution: `dx` (when asked for), `dW` and `db`.
pub(super) struct ConvGrads<E> {
    pub dx: Option<Vec<E>>,
    pub dw: Vec<f64>,
    pub db: Vec<f64>,
}

/// The gradients of `y = conv(x, w) + b` for the output gradient `dy`.
pub(super) fn conv2d_backward<E: Real>(
    x: &[E],
    w: &[E],
    dy: &[E],
    d: ConvDims,
    with_dx: bool,
) -> ConvGrads<E> {
    let per_task = d.n.div_ceil(rayon::current_num_threads()).max(1);
    let (x_task, y_task) = (per_task * d.input_len(), per_task * d.output_len());
    let zero = || (vec![0.0; d.co * d.taps()], vec![0.0; d.co]);
    let add = |(mut dw, mut db): (Vec<f64>, Vec<f64>), (dw2, db2): (Vec<f64>, Vec<f64>)| {
        dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
        (dw, db)
    };
    let tasks = x.par_chunks(x_task).zip(dy.par_chunks(y_task));
    let (dx, (dw, db)) = if with_dx {
        let mut dx = vec![E::default(); x.len()];
        let sums = dx
            .par_chunks_mut(x_task)
            .zip(tasks)
            .map(|(dx, (x, dy))| Task::new(d).run(x, dy, Some((w, dx))))
            .reduce(zero, add);
        (Some(dx), sums)
    } else {
        let sums = tasks
            .map(|(x, dy)| Task::new(d).run(x, dy, None))
            .reduce(zero, add);
        (None, sums)
    };
    ConvGrads { dx, dw, db }
}

/// One rayon task's buffers, for [`ConvDims::batch`] samples at a time.
struct Task<E> {
    d: ConvDims,
    /// `col[r][s·P + p]`, the im2col view of the batch.
    col: Vec<E>,
    /// `dy[o][s·P + p]`, the batch's output gradient by channel.
    grad: Vec<E>,
}

impl<E: Real> Task<E> {
    fn new(d: ConvDims) -> Self {
        let width = d.batch() * d.positions();
        Self {
            d,
            col: vec![E::default(); d.taps() * width],
            grad: vec![E::default(); d.co * width],
        }
    }

    /// `(dW, db)` over the task's samples; `dx` written where given with the weight. The
    /// loops are compiled for the CPU's SIMD width (pulp picks AVX2 and FMA at run time where
    /// the CPU has them), so they vectorize at that width on a baseline x86-64 binary.
    fn run(self, x: &[E], dy: &[E], input_grad: Option<(&[E], &mut [E])>) -> (Vec<f64>, Vec<f64>) {
        struct Dispatched<'a, E>(Task<E>, &'a [E], &'a [E], Option<(&'a [E], &'a mut [E])>);
        impl<E: Real> pulp::WithSimd for Dispatched<'_, E> {
            type Output = (Vec<f64>, Vec<f64>);
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
                let Dispatched(task, x, dy, input_grad) = self;
                task.run_here(x, dy, input_grad)
            }
        }
        pulp::Arch::new().dispatch(Dispatched(self, x, dy, input_grad))
    }

    #[inline(always)]
    fn run_here(
        mut self,
        x: &[E],
        dy: &[E],
        mut input_grad: Option<(&[E], &mut [E])>,
    ) -> (Vec<f64>, Vec<f64>) {
        let d = self.d;
        let mut dw = vec![0.0; d.co * d.taps()];
        let mut db = vec![0.0; d.co];
        let batch = d.batch();
        let samples = x.len() / d.input_len().max(1);
        for first in (0..samples).step_by(batch) {
            let count = batch.min(samples - first);
            let width = count * d.positions();
            let xs = &x[first * d.input_len()..][..count * d.input_len()];
            let dys = &dy[first * d.output_len()..][..count * d.output_len()];
            self.gather(xs, dys, count);
            self.weight_grad(width, &mut dw, &mut db);
            if let Some((w, dx)) = input_grad.as_mut() {
                let dx = &mut dx[first * d.input_len()..][..count * d.input_len()];
                self.input_grad(w, dx, count);
            }
        }
        (dw, db)
    }

    /// Fills `col` and `grad` for `count` samples.
    #[inline(always)]
    fn gather(&mut self, x: &[E], dy: &[E], count: usize) {
        let d = self.d;
        let (p, width) = (d.positions(), count * d.positions());
        for (s, (x, dy)) in x
            .chunks(d.input_len())
            .zip(dy.chunks(d.output_len()))
            .enumerate()
        {
            for (o, g) in dy.chunks(p).enumerate() {
                self.grad[o * width + s * p..][..p].copy_from_slice(g);
            }
            for r in 0..d.taps() {
                let (c, i, j) = (r / (d.kh * d.kw), r / d.kw % d.kh, r % d.kw);
                let out = &mut self.col[r * width + s * p..][..p];
                for (y, out) in out.chunks_mut(d.ow()).enumerate() {
                    out.copy_from_slice(&x[(c * d.h + y + i) * d.w + j..][..d.ow()]);
                }
            }
        }
    }

    /// Adds the batch's `dW[o][r] = grad[o] · col[r]` and `db[o] = Σ grad[o]`, four output
    /// channels a pass over each `col` row.
    #[inline(always)]
    fn weight_grad(&self, width: usize, dw: &mut [f64], db: &mut [f64]) {
        let d = self.d;
        let grad = &self.grad[..d.co * width];
        for (o, g) in grad.chunks(width).enumerate() {
            db[o] += sum(g);
        }
        let col = &self.col[..d.taps() * width];
        for (block, rows) in grad.chunks(4 * width).enumerate() {
            let rows: Vec<&[E]> = rows.chunks(width).collect();
            let four: Option<[&[E]; 4]> = rows.as_slice().try_into().ok();
            for (r, c) in col.chunks(width).enumerate() {
                let at = |k: usize| (4 * block + k) * d.taps() + r;
                match four {
                    Some(four) => {
                        let sums = dot4(four, c);
                        (0..4).for_each(|k| dw[at(k)] += sums[k]);
                    }
                    None => {
                        for (k, &g) in rows.iter().enumerate() {
                            dw[at(k)] += dot(g, c);
                        }
                    }
                }
            }
        }
    }

    /// `dx` of `count` samples from `grad`: `dcol = Wᵀ · grad` into `col`, [`LANES`] values
    /// of a row at a time summed over the output channels in registers, then col2im.
    #[inline(always)]
    fn input_grad(&mut self, w: &[E], dx: &mut [E], count: usize) {
        let d = self.d;
        let (p, width) = (d.positions(), count * d.positions());
        let grad = &self.grad[..d.co * width];
        for (r, dcol) in self.col[..d.taps() * width].chunks_mut(width).enumerate() {
            let weights: Vec<E> = (0..d.co).map(|o| w[o * d.taps() + r]).collect();
            let (chunks, tail) = dcol.as_chunks_mut::<LANES>();
            for (k, out) in chunks.iter_mut().enumerate() {
                let mut acc = [E::default(); LANES];
                for (g, &weight) in grad.chunks(width).zip(&weights) {
                    let g: &[E; LANES] = g[k * LANES..][..LANES].try_into().expect("LANES values");
                    for (a, &g) in acc.iter_mut().zip(g) {
                        *a = *a + weight * g;
                    }
                }
                *out = acc;
            }
            let start = chunks.len() * LANES;
            for (i, v) in tail.iter_mut().enumerate() {
                *v = (grad.chunks(width).zip(&weights)).fold(E::default(), |acc, (g, &weight)| {
                    acc + weight * g[start + i]
                });
            }
        }
        for (s, dx) in dx.chunks_mut(d.input_len()).enumerate() {
            for r in 0..d.taps() {
                let (c, i, j) = (r / (d.kh * d.kw), r / d.kw % d.kh, r % d.kw);
                let dcol = &self.col[r * width + s * p..][..p];
                for (y, dcol) in dcol.chunks(d.ow()).enumerate() {
                    let row = &mut dx[(c * d.h + y + i) * d.w + j..][..d.ow()];
                    for (v, &g) in row.iter_mut().zip(dcol) {
                        *v = *v + g;
                    }
                }
            }
        }
    }
}

/// The [`LANES`]-wide chunks of a run, and its tail.
type Chunks<'a, E> = (&'a [[E; LANES]], &'a [E]);

/// The lanes of an accumulator and a run's tail of products, added in `f64`.
#[inline(always)]
fn total<E: Real>(lanes: [E; LANES], tail: impl Iterator<Item = E>) -> f64 {
    lanes.iter().map(|v| v.to_f64()).sum::<f64>() + tail.map(E::to_f64).sum::<f64>()
}

/// `Σ a` in the input's precision, [`LANES`] wide, as `f64`.
#[inline(always)]
fn sum<E: Real>(a: &[E]) -> f64 {
    let (chunks, tail) = a.as_chunks::<LANES>();
    let mut lanes = [E::default(); LANES];
    for chunk in chunks {
        for k in 0..LANES {
            lanes[k] = lanes[k] + chunk[k];
        }
    }
    total(lanes, tail.iter().copied())
}

/// `a · b` in the input's precision, [`LANES`] wide, as `f64`.
#[inline(always)]
fn dot<E: Real>(a: &[E], b: &[E]) -> f64 {
    let ((a, a_tail), (b, b_tail)): (Chunks<E>, Chunks<E>) = (a.as_chunks(), b.as_chunks());
    let mut lanes = [E::default(); LANES];
    for (a, b) in a.iter().zip(b) {
        for k in 0..LANES {
            lanes[k] = lanes[k] + a[k] * b[k];
        }
    }
    total(lanes, a_tail.iter().zip(b_tail).map(|(&a, &b)| a * b))
}

/// `[a_0 · b, …, a_3 · b]`, each value of `b` loaded once, as [`dot`].
#[inline(always)]
fn dot4<E: Real>(a: [&[E]; 4], b: &[E]) -> [f64; 4] {
    let [a0, a1, a2, a3]: [Chunks<E>; 4] = a.map(|a| a.as_chunks());
    let (b, b_tail): Chunks<E> = b.as_chunks();
    let mut lanes = [[E::default(); LANES]; 4];
    for (i, b) in b.iter().enumerate() {
        let (c0, c1, c2, c3) = (&a0.0[i], &a1.0[i], &a2.0[i], &a3.0[i]);
        for k in 0..LANES {
            lanes[0][k] = lanes[0][k] + c0[k] * b[k];
            lanes[1][k] = lanes[1][k] + c1[k] * b[k];
            lanes[2][k] = lanes[2][k] + c2[k] * b[k];
            lanes[3][k] = lanes[3][k] + c3[k] * b[k];
        }
    }
    let tails = [a0.1, a1.1, a2.1, a3.1];
    std::array::from_fn(|k| {
        let products = tails[k].iter().zip(b_tail).map(|(&a, &b)| a * b);
        total(lanes[k], products)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_of_a_tiny_convolution_by_hand() {
        // x: one sample, one channel, 2×3; w: one 1×2 filter [2, -1]; y: 2×2.
        let d = ConvDims {
            n: 1,
            ci: 1,
            h: 2,
            w: 3,
            co: 1,
            kh: 1,
            kw: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [2.0, -1.0];
        let dy = [1.0, 0.5, -1.0, 2.0];
        let grads = conv2d_backward::<f64>(&x, &w, &dy, d, true);
        // dW[j] = Σ dy[y][x] · x[y][x + j]: 1·1 + 0.5·2 - 1·4 + 2·5 = 8, 1·2 + 0.5·3 - 5 + 12.
        assert_eq!(grads.dw, [8.0, 10.5]);
        assert_eq!(grads.db, [2.5]);
        // dx[y][x] = Σ_j dy[y][x - j] · w[j].
        assert_eq!(grads.dx.unwrap(), [2.0, 0.0, -0.5, -2.0, 5.0, -2.0]);
    }
}
