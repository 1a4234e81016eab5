//! The `#[cube(launch)]` kernels. Every buffer is a contiguous `f32` slice; sets are
//! addressed as the channels of a contiguous `[N, C, S]` tensor: value `j` of set `c`
//! (`j < N·S`) sits at `(j / S · C + c) · S + j % S`.

// The generated launch functions take one argument per kernel parameter.
#![allow(clippy::too_many_arguments)]

use cubecl::prelude::*;

/// The sum of `value` over the units of the cube, returned to every unit. `block` is the
/// cube's size (`CUBE_DIM`), a power of two.
#[cube]
pub(super) fn cube_sum(value: f32, #[comptime] block: usize) -> f32 {
    let mut partial = Shared::<[f32]>::new_slice(block);
    let unit = UNIT_POS as usize;
    // The compiler may give two calls the same memory: every unit must have read the
    // last call's result before any unit writes its partial sum.
    sync_cube();
    partial[unit] = value;
    sync_cube();
    let mut stride = CUBE_DIM / 2;
    while stride > 0 {
        if UNIT_POS < stride {
            let other = partial[unit + stride as usize];
            partial[unit] += other;
        }
        sync_cube();
        stride /= 2;
    }
    partial[0]
}

/// Index of value `j` of set `c` (see the module's docs).
#[cube]
pub(super) fn set_index(c: usize, j: usize, sets: usize, spatial: usize) -> usize {
    let n = j / spatial;
    (n * sets + c) * spatial + (j - n * spatial)
}

/// Mean and biased variance of every set, and the split centre `[hi; lo]` (`[2, sets]`,
/// `hi` the set's first value, `mean = hi + lo`). One cube per set.
#[cube(launch)]
pub(super) fn set_moments(
    x: &[f32],
    mean: &mut [f32],
    variance: &mut [f32],
    centre: &mut [f32],
    sets: usize,
    spatial: usize,
    count: usize,
    inv_count: f32,
    #[comptime] block: usize,
) {
    let c = CUBE_POS;
    // Uniform over the cube (a cube count rounded up by the hardware limits).
    if c >= sets {
        terminate!();
    }
    let step = CUBE_DIM as usize;
    let hi = x[c * spatial];

    let mut sum = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < count {
        sum += x[set_index(c, j, sets, spatial)] - hi;
        j += step;
    }
    let lo = cube_sum(sum, block) * inv_count;

    let mut squares = 0.0f32;
    let mut k = UNIT_POS as usize;
    while k < count {
        let d = (x[set_index(c, k, sets, spatial)] - hi) - lo;
        squares += d * d;
        k += step;
    }
    let total = cube_sum(squares, block);
    if UNIT_POS == 0 {
        mean[c] = hi + lo;
        variance[c] = total * inv_count;
        centre[c] = hi;
        centre[sets + c] = lo;
    }
}

/// BatchNorm's per-channel coefficients `[hi; lo; a; b]` (`[4, C]`) of
/// `y = ((x - hi) - lo)·a + b`, `a = γ/sqrt(var + eps)`, `b = β`. `centre` is `[hi; lo]`
/// (`split`) or the mean alone. One unit per channel.
#[cube(launch)]
pub(super) fn affine_coefficients(
    centre: &[f32],
    variance: &[f32],
    gamma: &[f32],
    beta: &[f32],
    coefficients: &mut [f32],
    channels: usize,
    epsilon: f32,
    #[comptime] split: bool,
) {
    let c = ABSOLUTE_POS;
    if c < channels {
        coefficients[c] = centre[c];
        coefficients[channels + c] = 0.0f32;
        if split {
            coefficients[channels + c] = centre[channels + c];
        }
        coefficients[2 * channels + c] = gamma[c] / (variance[c] + epsilon).sqrt();
        coefficients[3 * channels + c] = beta[c];
    }
}

/// `y = ((x - hi) - lo)·a + b` per channel of `[N, C, S]`, one unit per value.
#[cube(launch)]
pub(super) fn channel_affine(
    x: &[f32],
    coefficients: &[f32],
    y: &mut [f32],
    channels: usize,
    spatial: usize,
    len: usize,
) {
    let i = ABSOLUTE_POS;
    if i < len {
        let c = (i / spatial) % channels;
        let centred = (x[i] - coefficients[c]) - coefficients[channels + c];
        y[i] = centred * coefficients[2 * channels + c] + coefficients[3 * channels + c];
    }
}

/// `y = ((x - hi) - lo)·r·γ + β`, `r` per row of `K` values and `γ`, `β` per channel of
/// `[N, C, S]`; one unit per value.
#[cube(launch)]
pub(super) fn row_affine(
    x: &[f32],
    centre: &[f32],
    variance: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    rows: usize,
    row_len: usize,
    channels: usize,
    spatial: usize,
    len: usize,
    epsilon: f32,
) {
    let i = ABSOLUTE_POS;
    if i < len {
        let row = i / row_len;
        let c = (i / spatial) % channels;
        let r = 1.0f32 / (variance[row] + epsilon).sqrt();
        let centred = (x[i] - centre[row]) - centre[rows + row];
        y[i] = (centred * r) * gamma[c] + beta[c];
    }
}

/// Per set, about the saved mean `μ`: `[Σg; Σg·(x - μ); Σ(x - μ)]` (`[3, sets]`), where
/// `g = dy` (BatchNorm) or, when `weighted`, `g = dy·γ` with the channel of each value in a
/// `[N, channels, channel_len]` layout (GroupNorm; its rows are the sets). One cube per set.
#[cube(launch)]
pub(super) fn grad_sums(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    sums: &mut [f32],
    sets: usize,
    spatial: usize,
    count: usize,
    channels: usize,
    channel_len: usize,
    #[comptime] weighted: bool,
    #[comptime] block: usize,
) {
    let c = CUBE_POS;
    if c >= sets {
        terminate!();
    }
    let step = CUBE_DIM as usize;
    let mu = mean[c];
    let mut s_g = 0.0f32;
    let mut s_g_x = 0.0f32;
    let mut s_x = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < count {
        let idx = set_index(c, j, sets, spatial);
        let mut g = dy[idx];
        if weighted {
            g *= gamma[(idx / channel_len) % channels];
        }
        let centred = x[idx] - mu;
        s_g += g;
        s_g_x += g * centred;
        s_x += centred;
        j += step;
    }
    let t_g = cube_sum(s_g, block);
    let t_g_x = cube_sum(s_g_x, block);
    let t_x = cube_sum(s_x, block);
    if UNIT_POS == 0 {
        sums[c] = t_g;
        sums[sets + c] = t_g_x;
        sums[2 * sets + c] = t_x;
    }
}

/// BatchNorm's backward coefficients per channel. With `lo = Σ(x - μ)/m` (the rest of the
/// exact mean, for batch statistics) and `S₂ = Σdy·(x - μ) - lo·Σdy`:
/// `dx = dy·k_dy + ((x - μ) - lo)·k_x + k_0`, `k_dy = γr`, `k_x = -γr³S₂/m`,
/// `k_0 = -γrΣdy/m`; `dγ = S₂·r`, `dβ = Σdy`. Running statistics are constants (no
/// `batch_stats`): `lo = 0` and `dx = γr·dy`. Writes `[k_dy; k_x; k_0; lo]` (`[4, C]`).
#[cube(launch)]
pub(super) fn channel_grad_coefficients(
    sums: &[f32],
    variance: &[f32],
    gamma: &[f32],
    coefficients: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    channels: usize,
    epsilon: f32,
    inv_count: f32,
    #[comptime] batch_stats: bool,
) {
    let c = ABSOLUTE_POS;
    if c < channels {
        let r = 1.0f32 / (variance[c] + epsilon).sqrt();
        let s_dy = sums[c];
        // Not `Σ(x - μ)·0`: that is NaN when an input is infinite.
        let mut lo = 0.0f32;
        if batch_stats {
            lo = sums[2 * channels + c] * inv_count;
        }
        let s_dy_x = sums[channels + c] - lo * s_dy;
        let k_dy = gamma[c] * r;
        coefficients[c] = k_dy;
        coefficients[channels + c] = -(k_dy * r * r) * s_dy_x * inv_count;
        coefficients[2 * channels + c] = -k_dy * s_dy * inv_count;
        coefficients[3 * channels + c] = lo;
        dgamma[c] = s_dy_x * r;
        dbeta[c] = s_dy;
    }
}

/// `dx = dy·k_dy + ((x - μ) - lo)·k_x + k_0` per channel, one unit per value; `dx = dy·k_dy`
/// alone for constant statistics (no `batch_stats`), so a NaN or infinite running mean
/// leaves `dx` as finite as PyTorch's.
#[cube(launch)]
pub(super) fn channel_grad_dx(
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    coefficients: &[f32],
    dx: &mut [f32],
    channels: usize,
    spatial: usize,
    len: usize,
    #[comptime] batch_stats: bool,
) {
    let i = ABSOLUTE_POS;
    if i < len {
        let c = (i / spatial) % channels;
        let scaled = dy[i] * coefficients[c];
        if batch_stats {
            let centred = (x[i] - mean[c]) - coefficients[3 * channels + c];
            dx[i] = scaled + centred * coefficients[channels + c] + coefficients[2 * channels + c];
        } else {
            dx[i] = scaled;
        }
    }
}

/// GroupNorm's backward coefficients per row, with `lo = Σ(x - μ)/K`, `A = Σg` and
/// `B = Σg·(x - μ) - lo·A`: `dx = rγ·dy + ((x - μ) - lo)·k_x + k_0`, `k_x = -r³B/K`,
/// `k_0 = -rA/K`. Writes `[r; lo; k_x; k_0]` (`[4, rows]`); one unit per row.
#[cube(launch)]
pub(super) fn row_grad_coefficients(
    sums: &[f32],
    variance: &[f32],
    coefficients: &mut [f32],
    rows: usize,
    inv_len: f32,
    epsilon: f32,
) {
    let row = ABSOLUTE_POS;
    if row < rows {
        let r = 1.0f32 / (variance[row] + epsilon).sqrt();
        let a = sums[row];
        let lo = sums[2 * rows + row] * inv_len;
        let b = sums[rows + row] - lo * a;
        coefficients[row] = r;
        coefficients[rows + row] = lo;
        coefficients[2 * rows + row] = -(r * r * r) * b * inv_len;
        coefficients[3 * rows + row] = -r * a * inv_len;
    }
}

/// GroupNorm's `dγ_c = Σ dy·x̂` and `dβ_c = Σ dy` over the `N·S` values of channel `c`,
/// `x̂ = ((x - μ) - lo)·r` from its rows' statistics. One cube per channel.
#[cube(launch)]
pub(super) fn group_affine_grad(
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    coefficients: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    rows: usize,
    channels: usize,
    spatial: usize,
    count: usize,
    channels_per_group: usize,
    #[comptime] block: usize,
) {
    let c = CUBE_POS;
    if c >= channels {
        terminate!();
    }
    let groups = channels / channels_per_group;
    let group = c / channels_per_group;
    let step = CUBE_DIM as usize;
    let mut s_dy_x = 0.0f32;
    let mut s_dy = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < count {
        let idx = set_index(c, j, channels, spatial);
        let row = (j / spatial) * groups + group;
        let x_hat = ((x[idx] - mean[row]) - coefficients[rows + row]) * coefficients[row];
        let g = dy[idx];
        s_dy += g;
        s_dy_x += g * x_hat;
        j += step;
    }
    let t_dy_x = cube_sum(s_dy_x, block);
    let t_dy = cube_sum(s_dy, block);
    if UNIT_POS == 0 {
        dgamma[c] = t_dy_x;
        dbeta[c] = t_dy;
    }
}

/// `dx = rγ·dy + ((x - μ) - lo)·k_x + k_0` per row, one unit per value.
#[cube(launch)]
pub(super) fn row_grad_dx(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    coefficients: &[f32],
    dx: &mut [f32],
    rows: usize,
    row_len: usize,
    channels: usize,
    spatial: usize,
    len: usize,
) {
    let i = ABSOLUTE_POS;
    if i < len {
        let row = i / row_len;
        let r = coefficients[row];
        let centred = (x[i] - mean[row]) - coefficients[rows + row];
        dx[i] = dy[i] * (r * gamma[(i / spatial) % channels])
            + centred * coefficients[2 * rows + row]
            + coefficients[3 * rows + row];
    }
}
