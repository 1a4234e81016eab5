//! 2×2 average pooling with stride 2 on contiguous `[planes, H, W]` slices, forward and
//! backward. Work is split across rayon's pool by whole planes, at least [`MIN_TASK`] input
//! values a task; each output value is written once, its terms summed in the order Burn's
//! own kernel sums them (so both give the same bits).

use std::ops::{Add, Mul};

use rayon::prelude::*;

/// Input values per rayon task: below this, waking the other thread costs more than it saves.
const MIN_TASK: usize = 1 << 16;

/// The float types the kernels compute in.
pub(super) trait Real: Copy + Send + Sync + Add<Output = Self> + Mul<Output = Self> {
    const ZERO: Self;
    const QUARTER: Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const QUARTER: Self = 0.25;
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const QUARTER: Self = 0.25;
}

/// `[planes, h, w]`, pooled to `[planes, h / 2, w / 2]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Planes {
    pub count: usize,
    pub h: usize,
    pub w: usize,
}

impl Planes {
    pub(super) fn oh(self) -> usize {
        self.h / 2
    }

    pub(super) fn ow(self) -> usize {
        self.w / 2
    }

    /// Input and output values per rayon task (whole planes).
    fn task(self) -> (usize, usize) {
        let planes = (MIN_TASK / (self.h * self.w).max(1)).max(1);
        (planes * self.h * self.w, planes * self.oh() * self.ow())
    }
}

/// The pooled planes of `x`.
pub(super) fn avg_pool_2x2<E: Real>(x: &[E], p: Planes) -> Vec<E> {
    let mut out = vec![E::ZERO; p.count * p.oh() * p.ow()];
    let (in_task, out_task) = p.task();
    if out_task > 0 {
        out.par_chunks_mut(out_task)
            .zip(x.par_chunks(in_task))
            .for_each(|(out, x)| pool_planes(out, x, p));
    }
    out
}

/// `out[i][j] = (x[2i][2j] + x[2i][2j+1] + x[2i+1][2j] + x[2i+1][2j+1]) / 4` per plane.
fn pool_planes<E: Real>(out: &mut [E], x: &[E], p: Planes) {
    let (oh, ow) = (p.oh(), p.ow());
    for (out, x) in out.chunks_mut(oh * ow).zip(x.chunks(p.h * p.w)) {
        for (i, out) in out.chunks_mut(ow).enumerate() {
            let (top, _) = x[2 * i * p.w..][..2 * ow].as_chunks::<2>();
            let (bottom, _) = x[(2 * i + 1) * p.w..][..2 * ow].as_chunks::<2>();
            for ((o, t), b) in out.iter_mut().zip(top).zip(bottom) {
                *o = (t[0] + t[1] + b[0] + b[1]) * E::QUARTER;
            }
        }
    }
}

/// The input gradient of [`avg_pool_2x2`] for the output gradient `dy`.
pub(super) fn avg_pool_2x2_backward<E: Real>(dy: &[E], p: Planes) -> Vec<E> {
    let mut dx = vec![E::ZERO; p.count * p.h * p.w];
    let (in_task, out_task) = p.task();
    if out_task > 0 {
        dx.par_chunks_mut(in_task)
            .zip(dy.par_chunks(out_task))
            .for_each(|(dx, dy)| unpool_planes(dx, dy, p));
    }
    dx
}

/// `dx[2i + a][2j + b] = dy[i][j] / 4` per plane; an odd last row or column stays zero.
fn unpool_planes<E: Real>(dx: &mut [E], dy: &[E], p: Planes) {
    let (oh, ow) = (p.oh(), p.ow());
    for (dx, dy) in dx.chunks_mut(p.h * p.w).zip(dy.chunks(oh * ow)) {
        for (i, dy) in dy.chunks(ow).enumerate() {
            for row in [2 * i, 2 * i + 1] {
                let (pairs, _) = dx[row * p.w..][..2 * ow].as_chunks_mut::<2>();
                for (pair, &g) in pairs.iter_mut().zip(dy) {
                    let share = g * E::QUARTER;
                    *pair = [share, share];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_each_2x2_block_and_drops_an_odd_edge() {
        // One 3×5 plane: rows 0-1 pool into two blocks; the last row and column are dropped.
        #[rustfmt::skip]
        let x = [
            1.0, 2.0, 3.0, 4.0, 9.0,
            5.0, 6.0, 7.0, 8.0, 9.0,
            9.0, 9.0, 9.0, 9.0, 9.0,
        ];
        let p = Planes {
            count: 1,
            h: 3,
            w: 5,
        };
        // (1 + 2 + 5 + 6) / 4 and (3 + 4 + 7 + 8) / 4.
        assert_eq!(avg_pool_2x2::<f64>(&x, p), [3.5, 5.5]);
        #[rustfmt::skip]
        assert_eq!(avg_pool_2x2_backward::<f64>(&[4.0, 8.0], p), [
            1.0, 1.0, 2.0, 2.0, 0.0,
            1.0, 1.0, 2.0, 2.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ]);
    }
}
