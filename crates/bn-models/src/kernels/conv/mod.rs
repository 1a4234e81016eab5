//! A 2-D convolution with stride 1, no padding, no dilation and one group, on contiguous
//! NCHW slices, [`forward`] and [`backward`], both computed directly from the input (no im2col).

mod backward;
mod forward;

use std::ops::{Add, Mul};

pub(super) use backward::conv2d_backward;
pub(super) use forward::conv2d_forward;

/// The float types the kernels compute in.
pub(super) trait Real:
    Copy + Send + Sync + Default + Add<Output = Self> + Mul<Output = Self>
{
    fn to_f64(self) -> f64;

    /// `self · a + b` rounded once: one FMA instruction inside [`simd`], where the CPU
    /// has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }

    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }

    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
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
    /// Where weight position `r = (c, i, j)` reads in a sample's input, for the output at
    /// the origin: `(c·h + i)·w + j`.
    fn tap_offset(self, r: usize) -> usize {
        let (c, i, j) = (r / (self.kh * self.kw), r / self.kw % self.kh, r % self.kw);
        (c * self.h + i) * self.w + j
    }
}

/// Output positions of a row summed together: one SIMD register of `f32` with AVX2.
const STRIP: usize = 8;

/// [`STRIP`] consecutive outputs of a row.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Strip {
    row: usize,
    column: usize,
    /// Leading positions the row's previous strip already covers (a last strip overlaps its
    /// neighbour when the width is not a multiple of [`STRIP`]).
    covered: usize,
}

/// Every strip of an output plane, row by row; none when a row is narrower than a strip.
fn strips(d: ConvDims) -> Vec<Strip> {
    if d.ow() < STRIP {
        return Vec::new();
    }
    let mut columns: Vec<(usize, usize)> = (0..=d.ow() - STRIP)
        .step_by(STRIP)
        .map(|column| (column, 0))
        .collect();
    if !d.ow().is_multiple_of(STRIP) {
        columns.push((d.ow() - STRIP, STRIP - d.ow() % STRIP));
    }
    (0..d.oh())
        .flat_map(|row| {
            let strip = move |&(column, covered)| Strip {
                row,
                column,
                covered,
            };
            columns.iter().map(strip)
        })
        .collect()
}

/// `op()` compiled for the CPU's SIMD width: pulp picks AVX2 and FMA at run time where the
/// CPU has them, so the kernels' fixed-width loops vectorize at that width, and
/// [`Real::mul_add`] is one instruction, in a baseline x86-64 binary. `op` and everything
/// it calls must be `#[inline(always)]` to be compiled so.
#[inline(always)]
fn simd<R>(op: impl FnOnce() -> R) -> R {
    struct Op<F>(F);
    impl<R, F: FnOnce() -> R> pulp::WithSimd for Op<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> R {
            (self.0)()
        }
    }
    pulp::Arch::new().dispatch(Op(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(h: usize, w: usize, kw: usize) -> ConvDims {
        ConvDims {
            n: 1,
            ci: 1,
            h,
            w,
            co: 1,
            kh: 1,
            kw,
        }
    }

    #[test]
    fn strips_cover_every_column_once() {
        let strip = |row, column, covered| Strip {
            row,
            column,
            covered,
        };
        // Width 10: columns 0..8, then 2..10 with 0..8 covered up to 8.
        let ten = [
            strip(0, 0, 0),
            strip(0, 2, 6),
            strip(1, 0, 0),
            strip(1, 2, 6),
        ];
        assert_eq!(strips(dims(2, 12, 3)), ten);
        // Width 20: 0..8, 8..16, 12..20 (12..16 covered).
        let twenty = [strip(0, 0, 0), strip(0, 8, 0), strip(0, 12, 4)];
        assert_eq!(strips(dims(1, 20, 1)), twenty);
        assert_eq!(strips(dims(1, 16, 1)), [strip(0, 0, 0), strip(0, 8, 0)]);
        assert!(strips(dims(3, 9, 3)).is_empty());
    }
}
