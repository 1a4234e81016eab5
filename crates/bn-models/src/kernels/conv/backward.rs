//! The backward of the convolution, computed directly like its forward (no im2col). With
//! `r = (c, i, j)` a weight position, `off(r) = (c·h + i)·w + j` its offset in a sample's
//! input and `q = y·w + x` an output position's offset:
//! - `dW[o][r] = Σ_samples Σ_(y, x) dy[o][y][x] · x[off(r) + q]`,
//! - `db[o] = Σ_samples Σ_(y, x) dy[o][y][x]`,
//! - `dx[off(r) + q] += Σ_o W[o][r] · dy[o][y][x]`.
//!
//! The output gradient is copied strip by strip (the forward's [`Strip`]s), with the lanes a
//! row's overlapping last strip shares with its neighbour set to zero, so every position
//! counts once. `dW` is summed in registers over blocks of [`CHANNELS`] output channels by
//! [`TAPS`] weight positions, `dx` over blocks of [`TAPS`] weight positions by [`STRIPS`]
//! strips. Rows narrower than a strip are summed one value at a time.
//!
//! Samples are split across rayon's pool, one task per thread; each task adds its `dW` and
//! `db` into `f64` every few samples (so every lane sums at least [`MIN_STRIPS`] strips) and
//! writes its own samples' `dx`.

use rayon::prelude::*;

use super::{ConvDims, Real, STRIP, Strip, simd, strips};

/// Output channels of a `dW` block.
const CHANNELS: usize = 4;

/// Weight positions of a block: [`CHANNELS`] × [`TAPS`] or [`TAPS`] × [`STRIPS`]
/// accumulators leave registers for the loads.
const TAPS: usize = 3;

/// Strips of a `dx` block.
const STRIPS: usize = 4;

/// Strips each `f32` lane of `dW` sums before it is added into `f64`.
const MIN_STRIPS: usize = 256;

/// The gradients of a convolution: `dx` (when asked for), `dW` and `db`.
pub(in crate::kernels) struct ConvGrads<E> {
    pub dx: Option<Vec<E>>,
    pub dw: Vec<f64>,
    pub db: Vec<f64>,
}

/// The gradients of `y = conv(x, w) + b` for the output gradient `dy`.
pub(in crate::kernels) fn conv2d_backward<E: Real>(
    x: &[E],
    w: &[E],
    dy: &[E],
    d: ConvDims,
    with_dx: bool,
) -> ConvGrads<E> {
    let per_task = d.n.div_ceil(rayon::current_num_threads()).max(1);
    let (x_task, y_task) = (per_task * d.input_len(), per_task * d.output_len());
    let strips = strips(d);
    let zero = || (vec![0.0; d.co * d.taps()], vec![0.0; d.co]);
    let add = |(mut dw, mut db): (Vec<f64>, Vec<f64>), (dw2, db2): (Vec<f64>, Vec<f64>)| {
        dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
        (dw, db)
    };
    let task = |x: &[E], dy: &[E], dx: Option<&mut [E]>| {
        let task = Task {
            d,
            w,
            strips: &strips,
        };
        simd(
            #[inline(always)]
            || task.run(x, dy, dx),
        )
    };
    let tasks = x.par_chunks(x_task).zip(dy.par_chunks(y_task));
    let (dx, (dw, db)) = if with_dx {
        let mut dx = vec![E::default(); x.len()];
        let sums = dx
            .par_chunks_mut(x_task)
            .zip(tasks)
            .map(|(dx, (x, dy))| task(x, dy, Some(dx)))
            .reduce(zero, add);
        (Some(dx), sums)
    } else {
        let sums = tasks.map(|(x, dy)| task(x, dy, None)).reduce(zero, add);
        (None, sums)
    };
    ConvGrads { dx, dw, db }
}

/// What one rayon task reads: the shapes, the weights and the output's strips.
struct Task<'a, E> {
    d: ConvDims,
    w: &'a [E],
    strips: &'a [Strip],
}

impl<E: Real> Task<'_, E> {
    /// `(dW, db)` over the task's samples, and their `dx` where given.
    #[inline(always)]
    fn run(&self, x: &[E], dy: &[E], mut dx: Option<&mut [E]>) -> (Vec<f64>, Vec<f64>) {
        let d = self.d;
        let mut dw = vec![0.0; d.co * d.taps()];
        let mut db = vec![0.0; d.co];
        for dy in dy.chunks(d.output_len()) {
            for (sum, plane) in db.iter_mut().zip(dy.chunks(d.positions())) {
                *sum += lane_sum(plane);
            }
        }
        if self.strips.is_empty() {
            self.narrow(x, dy, dx, &mut dw);
            return (dw, db);
        }
        let samples = x.len() / d.input_len();
        let batch = MIN_STRIPS.div_ceil(self.strips.len());
        let mut grad = vec![E::default(); batch * d.co * self.strips.len() * STRIP];
        for first in (0..samples).step_by(batch) {
            let count = batch.min(samples - first);
            let xs = &x[first * d.input_len()..][..count * d.input_len()];
            let dys = &dy[first * d.output_len()..][..count * d.output_len()];
            self.gather(dys, &mut grad);
            self.weight_grad(xs, &grad, &mut dw);
            if let Some(dx) = dx.as_mut() {
                let dx = &mut dx[first * d.input_len()..][..count * d.input_len()];
                self.input_grad(&grad, dx);
            }
        }
        (dw, db)
    }

    /// `grad[s][o][k]`: the [`STRIP`] values of `dy[s][o]` at strip `k`, the lanes the strip
    /// shares with its row's previous one set to zero.
    #[inline(always)]
    fn gather(&self, dy: &[E], grad: &mut [E]) {
        let d = self.d;
        let plane = self.strips.len() * STRIP;
        for (dy, grad) in dy.chunks(d.positions()).zip(grad.chunks_mut(plane)) {
            let (outs, _) = grad.as_chunks_mut::<STRIP>();
            for (strip, out) in self.strips.iter().zip(outs) {
                out.copy_from_slice(&dy[strip.row * d.ow() + strip.column..][..STRIP]);
                if strip.covered > 0 {
                    out[..strip.covered].fill(E::default());
                }
            }
        }
    }

    /// The offsets `off(r)` of weight positions `first..first + N` in a sample's input.
    #[inline(always)]
    fn offsets<const N: usize>(&self, first: usize) -> [usize; N] {
        std::array::from_fn(|t| self.d.tap_offset(first + t))
    }

    /// Adds the samples' `dW` to `dw`, block by block.
    #[inline(always)]
    fn weight_grad(&self, x: &[E], grad: &[E], dw: &mut [f64]) {
        let d = self.d;
        for first in (0..d.co).step_by(CHANNELS) {
            for tap in (0..d.taps()).step_by(TAPS) {
                let at = (first, tap);
                match (CHANNELS.min(d.co - first), TAPS.min(d.taps() - tap)) {
                    (4, 3) => self.weight_block::<4, 3>(x, grad, at, dw),
                    (4, 2) => self.weight_block::<4, 2>(x, grad, at, dw),
                    (4, _) => self.weight_block::<4, 1>(x, grad, at, dw),
                    (3, 3) => self.weight_block::<3, 3>(x, grad, at, dw),
                    (3, 2) => self.weight_block::<3, 2>(x, grad, at, dw),
                    (3, _) => self.weight_block::<3, 1>(x, grad, at, dw),
                    (2, 3) => self.weight_block::<2, 3>(x, grad, at, dw),
                    (2, 2) => self.weight_block::<2, 2>(x, grad, at, dw),
                    (2, _) => self.weight_block::<2, 1>(x, grad, at, dw),
                    (_, 3) => self.weight_block::<1, 3>(x, grad, at, dw),
                    (_, 2) => self.weight_block::<1, 2>(x, grad, at, dw),
                    (_, _) => self.weight_block::<1, 1>(x, grad, at, dw),
                }
            }
        }
    }

    /// `dW` of output channels `first..first + C` at weight positions `tap..tap + T`, summed
    /// in registers over the samples' strips. The loops run over constant bounds, so they
    /// unroll and each strip's lanes become one SIMD multiply-add.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // indices over constant bounds unroll
    fn weight_block<const C: usize, const T: usize>(
        &self,
        x: &[E],
        grad: &[E],
        (first, tap): (usize, usize),
        dw: &mut [f64],
    ) {
        let d = self.d;
        let offsets = self.offsets::<T>(tap);
        let plane = self.strips.len() * STRIP;
        let mut acc = [[[E::default(); STRIP]; T]; C];
        for (x, grad) in x.chunks(d.input_len()).zip(grad.chunks(d.co * plane)) {
            // Each channel's strips, sliced once.
            let channels: [&[[E; STRIP]]; C] =
                std::array::from_fn(|o| grad[(first + o) * plane..][..plane].as_chunks().0);
            for (k, strip) in self.strips.iter().enumerate() {
                let start = strip.row * d.w + strip.column;
                let mut inputs = [[E::default(); STRIP]; T];
                for t in 0..T {
                    let at = offsets[t] + start;
                    inputs[t].copy_from_slice(&x[at..at + STRIP]);
                }
                // All loads first: the accumulators then stay in registers.
                let mut g = [[E::default(); STRIP]; C];
                for o in 0..C {
                    g[o] = channels[o][k];
                }
                for o in 0..C {
                    for t in 0..T {
                        for l in 0..STRIP {
                            acc[o][t][l] = g[o][l].mul_add(inputs[t][l], acc[o][t][l]);
                        }
                    }
                }
            }
        }
        for o in 0..C {
            for t in 0..T {
                let lanes = acc[o][t].iter().map(|v| v.to_f64()).sum::<f64>();
                dw[(first + o) * d.taps() + tap + t] += lanes;
            }
        }
    }

    /// Adds the samples' `dx`, block by block.
    #[inline(always)]
    fn input_grad(&self, grad: &[E], dx: &mut [E]) {
        let d = self.d;
        let plane = self.strips.len() * STRIP;
        for (grad, dx) in grad.chunks(d.co * plane).zip(dx.chunks_mut(d.input_len())) {
            for tap in (0..d.taps()).step_by(TAPS) {
                for first in (0..self.strips.len()).step_by(STRIPS) {
                    let at = (tap, first);
                    match (
                        TAPS.min(d.taps() - tap),
                        STRIPS.min(self.strips.len() - first),
                    ) {
                        (3, 4) => self.input_block::<3, 4>(grad, at, dx),
                        (3, 3) => self.input_block::<3, 3>(grad, at, dx),
                        (3, 2) => self.input_block::<3, 2>(grad, at, dx),
                        (3, _) => self.input_block::<3, 1>(grad, at, dx),
                        (2, 4) => self.input_block::<2, 4>(grad, at, dx),
                        (2, 3) => self.input_block::<2, 3>(grad, at, dx),
                        (2, 2) => self.input_block::<2, 2>(grad, at, dx),
                        (2, _) => self.input_block::<2, 1>(grad, at, dx),
                        (_, 4) => self.input_block::<1, 4>(grad, at, dx),
                        (_, 3) => self.input_block::<1, 3>(grad, at, dx),
                        (_, 2) => self.input_block::<1, 2>(grad, at, dx),
                        (_, _) => self.input_block::<1, 1>(grad, at, dx),
                    }
                }
            }
        }
    }

    /// One sample's `dx` at weight positions `tap..tap + T` from strips `first..first + S`:
    /// `Σ_o W[o][r] · grad[o][k]` summed in registers, then added at `off(r)` + the strip.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // indices over constant bounds unroll
    fn input_block<const T: usize, const S: usize>(
        &self,
        grad: &[E],
        (tap, first): (usize, usize),
        dx: &mut [E],
    ) {
        let d = self.d;
        let offsets = self.offsets::<T>(tap);
        let plane = self.strips.len() * STRIP;
        let mut acc = [[[E::default(); STRIP]; S]; T];
        for o in 0..d.co {
            let mut g = [[E::default(); STRIP]; S];
            for s in 0..S {
                g[s].copy_from_slice(&grad[o * plane + (first + s) * STRIP..][..STRIP]);
            }
            let mut weights = [E::default(); T];
            weights.copy_from_slice(&self.w[o * d.taps() + tap..][..T]);
            for t in 0..T {
                for s in 0..S {
                    for l in 0..STRIP {
                        acc[t][s][l] = weights[t].mul_add(g[s][l], acc[t][s][l]);
                    }
                }
            }
        }
        for t in 0..T {
            for s in 0..S {
                let strip = self.strips[first + s];
                let at = offsets[t] + strip.row * d.w + strip.column;
                for (v, &a) in dx[at..at + STRIP].iter_mut().zip(&acc[t][s]) {
                    *v = *v + a;
                }
            }
        }
    }

    /// `dW` and `dx` one value at a time, for rows narrower than a strip.
    #[inline(always)]
    fn narrow(&self, x: &[E], dy: &[E], mut dx: Option<&mut [E]>, dw: &mut [f64]) {
        let d = self.d;
        for (s, (x, dy)) in x
            .chunks(d.input_len())
            .zip(dy.chunks(d.output_len()))
            .enumerate()
        {
            for r in 0..d.taps() {
                let offset = d.tap_offset(r);
                for (o, dy) in dy.chunks(d.positions()).enumerate() {
                    let weight = self.w[o * d.taps() + r];
                    let mut sum = 0.0;
                    for (q, &g) in dy.iter().enumerate() {
                        let at = offset + q / d.ow() * d.w + q % d.ow();
                        sum += (g * x[at]).to_f64();
                        if let Some(dx) = dx.as_mut() {
                            let v = &mut dx[s * d.input_len() + at];
                            *v = weight.mul_add(g, *v);
                        }
                    }
                    dw[o * d.taps() + r] += sum;
                }
            }
        }
    }
}

/// `Σ values` in [`STRIP`] lanes of the input's precision, then in `f64`.
#[inline(always)]
fn lane_sum<E: Real>(values: &[E]) -> f64 {
    let (chunks, tail) = values.as_chunks::<STRIP>();
    let mut lanes = [E::default(); STRIP];
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = *lane + v;
        }
    }
    lanes.iter().chain(tail).map(|v| v.to_f64()).sum()
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
