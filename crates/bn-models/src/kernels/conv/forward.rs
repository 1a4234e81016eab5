//! The forward of the convolution, computed directly from the input (no im2col):
//! `y[o][oy][ox] = b[o] + Σ_{c,i,j} W[o][c][i][j] · x[c][oy + i][ox + j]`.
//!
//! Each output row is cut into strips of [`STRIP`] positions, the last one overlapping its
//! neighbour when the width is not a multiple of [`STRIP`]. A block of up to [`CHANNELS`]
//! output channels by up to [`STRIPS`] strips is summed in registers over every weight
//! position, so each input vector loaded feeds [`CHANNELS`] multiply-adds and each weight
//! [`STRIPS`]. Rows narrower than a strip are summed one output at a time. Samples are spread
//! over rayon's pool.

use rayon::prelude::*;

use super::{ConvDims, Real, STRIP, Strip, simd, strips};

/// Output channels of a block.
const CHANNELS: usize = 4;

/// Strips of a block: [`CHANNELS`] × [`STRIPS`] accumulators leave registers for the loads.
const STRIPS: usize = 3;

/// `conv(x, w) + b` for inputs `x: [n, ci, h, w]`, weights `w: [co, ci, kh, kw]` and bias
/// `b: [co]`, as `[n, co, oh, ow]`.
pub(in crate::kernels) fn conv2d_forward<E: Real>(
    x: &[E],
    w: &[E],
    b: &[E],
    d: ConvDims,
) -> Vec<E> {
    let mut y = vec![E::default(); d.n * d.output_len()];
    let strips = strips(d);
    y.par_chunks_mut(d.output_len())
        .zip(x.par_chunks(d.input_len()))
        .for_each(|(y, x)| {
            simd(
                #[inline(always)]
                || sample(x, w, b, d, &strips, y),
            )
        });
    y
}

/// One sample's output `y: [co, oh, ow]` from its input `x: [ci, h, w]`.
#[inline(always)]
fn sample<E: Real>(x: &[E], w: &[E], b: &[E], d: ConvDims, strips: &[Strip], y: &mut [E]) {
    if strips.is_empty() {
        return narrow(x, w, b, d, y);
    }
    for first in (0..d.co).step_by(CHANNELS) {
        let channels = CHANNELS.min(d.co - first);
        for group in strips.chunks(STRIPS) {
            match (channels, group.len()) {
                (4, 3) => block::<E, 4, 3>(x, w, b, d, first, group, y),
                (4, 2) => block::<E, 4, 2>(x, w, b, d, first, group, y),
                (4, _) => block::<E, 4, 1>(x, w, b, d, first, group, y),
                (3, 3) => block::<E, 3, 3>(x, w, b, d, first, group, y),
                (3, 2) => block::<E, 3, 2>(x, w, b, d, first, group, y),
                (3, _) => block::<E, 3, 1>(x, w, b, d, first, group, y),
                (2, 3) => block::<E, 2, 3>(x, w, b, d, first, group, y),
                (2, 2) => block::<E, 2, 2>(x, w, b, d, first, group, y),
                (2, _) => block::<E, 2, 1>(x, w, b, d, first, group, y),
                (_, 3) => block::<E, 1, 3>(x, w, b, d, first, group, y),
                (_, 2) => block::<E, 1, 2>(x, w, b, d, first, group, y),
                (_, _) => block::<E, 1, 1>(x, w, b, d, first, group, y),
            }
        }
    }
}

/// Output channels `first..first + C` at the `S` strips `group`, summed in registers. The
/// loops run over constant bounds, so they unroll and each strip's lanes become one SIMD
/// multiply-add.
#[inline(always)]
fn block<E: Real, const C: usize, const S: usize>(
    x: &[E],
    w: &[E],
    b: &[E],
    d: ConvDims,
    first: usize,
    group: &[Strip],
    y: &mut [E],
) {
    let mut starts = [0; S];
    for s in 0..S {
        starts[s] = group[s].row * d.w + group[s].column;
    }
    let mut acc = [[[E::default(); STRIP]; S]; C];
    for o in 0..C {
        acc[o] = [[b[first + o]; STRIP]; S];
    }
    for c in 0..d.ci {
        for i in 0..d.kh {
            let (line, tap) = ((c * d.h + i) * d.w, (c * d.kh + i) * d.kw);
            // The row's weights and input windows, sliced once so that the loop over `j`
            // needs no bounds checks.
            let weights: [&[E]; C] =
                std::array::from_fn(|o| &w[(first + o) * d.taps() + tap..][..d.kw]);
            let windows: [&[E]; S] =
                std::array::from_fn(|s| &x[line + starts[s]..][..d.kw - 1 + STRIP]);
            for j in 0..d.kw {
                let mut inputs = [[E::default(); STRIP]; S];
                for s in 0..S {
                    inputs[s].copy_from_slice(&windows[s][j..j + STRIP]);
                }
                for o in 0..C {
                    let weight = weights[o][j];
                    for s in 0..S {
                        for l in 0..STRIP {
                            acc[o][s][l] = weight.mul_add(inputs[s][l], acc[o][s][l]);
                        }
                    }
                }
            }
        }
    }
    for o in 0..C {
        for s in 0..S {
            let Strip { row, column, .. } = group[s];
            y[((first + o) * d.oh() + row) * d.ow() + column..][..STRIP]
                .copy_from_slice(&acc[o][s]);
        }
    }
}

/// The output of a sample whose rows are narrower than a strip, one value at a time.
#[inline(always)]
fn narrow<E: Real>(x: &[E], w: &[E], b: &[E], d: ConvDims, y: &mut [E]) {
    for (o, plane) in y.chunks_mut(d.positions()).enumerate() {
        let weights = &w[o * d.taps()..][..d.taps()];
        for (p, out) in plane.iter_mut().enumerate() {
            let (row, column) = (p / d.ow(), p % d.ow());
            let mut sum = b[o];
            for (r, &weight) in weights.iter().enumerate() {
                sum = weight.mul_add(x[d.tap_offset(r) + row * d.w + column], sum);
            }
            *out = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(ci: usize, h: usize, w: usize, co: usize, kh: usize, kw: usize) -> ConvDims {
        ConvDims {
            n: 1,
            ci,
            h,
            w,
            co,
            kh,
            kw,
        }
    }

    #[test]
    fn a_tiny_convolution_by_hand() {
        // x: one channel, 2×3; w: one 1×2 filter [2, -1], bias 0.5; y: 2×2.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = conv2d_forward::<f64>(&x, &[2.0, -1.0], &[0.5], dims(1, 2, 3, 1, 1, 2));
        // y[r][c] = 2·x[r][c] - x[r][c + 1] + 0.5.
        assert_eq!(y, [0.5, 1.5, 3.5, 4.5]);
    }
}
