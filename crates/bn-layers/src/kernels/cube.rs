//! The kernels on Burn's CubeCL backend (`burn::backend::Cube`: wgpu here, and the same
//! source on CUDA, ROCm and Metal): `#[cube(launch)]` kernels in `f32` with `f32`
//! accumulation. Other dtypes, and a fusion-wrapped `Cube` ([`unfused`]), take the composed
//! path.
//!
//! - **Statistics** (`set_moments`): one cube per channel (BatchNorm) or per row (GroupNorm,
//!   the rows of `[N·G, K]` seen as the channels of `[1, N·G, K]`). Each unit strides over the
//!   set, the partial sums meet in a shared-memory tree ([`kernels::cube_sum`]). The mean is
//!   taken about the set's first value (the shifted-data algorithm), the variance about the
//!   mean, `Σ(x - μ)²`, in a second read, never `Σx² - (Σx)²/m`.
//! - **Centring**: `x - μ` is `(x - hi) - lo`, `hi` the set's first value (or the saved mean)
//!   and `lo` the rest of the mean, so a large mean costs no digits. The backward's sums are
//!   about the saved mean and re-centred by `Σ(x - μ)` (zero for the exact mean), as on flex.
//! - **Outputs and `dx`**: one unit per value, the per-set coefficients computed once by a
//!   small kernel with one unit per channel or row.
//!
//! No kernel binds more than six buffers (WebGPU guarantees eight storage buffers per stage
//! and cubecl takes one), a cube has at most 256 units, and its shared memory is at most
//! 3 KiB. `launch` is the checked launch (the unchecked one is `unsafe`, forbidden here).

use std::any::{Any, TypeId};

use burn::backend::tensor::FloatTensor;
use burn::backend::{Cube, Shape, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::{BufferArg, Client, CubeCount, CubeDim};
use cubecl::server::CubeCountSelection;

use super::{NormGradKernels, NormKernels, composed};

/// The kernels. Every buffer is a contiguous `f32` slice; sets are addressed as the channels
/// of a contiguous `[N, C, S]` tensor: value `j` of set `c` (`j < N·S`) sits at
/// `(j / S · C + c) · S + j % S`.
mod kernels {
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

    /// Per set, about the saved mean `μ`: `[Σdy; Σdy·(x - μ); Σ(x - μ)]` (`[3, sets]`). One
    /// cube per set.
    #[cube(launch)]
    pub(super) fn grad_sums(
        x: &[f32],
        dy: &[f32],
        mean: &[f32],
        sums: &mut [f32],
        sets: usize,
        spatial: usize,
        count: usize,
        #[comptime] block: usize,
    ) {
        let c = CUBE_POS;
        if c >= sets {
            terminate!();
        }
        let step = CUBE_DIM as usize;
        let mu = mean[c];
        let mut s_dy = 0.0f32;
        let mut s_dy_x = 0.0f32;
        let mut s_x = 0.0f32;
        let mut j = UNIT_POS as usize;
        while j < count {
            let idx = set_index(c, j, sets, spatial);
            let g = dy[idx];
            let centred = x[idx] - mu;
            s_dy += g;
            s_dy_x += g * centred;
            s_x += centred;
            j += step;
        }
        let t_dy = cube_sum(s_dy, block);
        let t_dy_x = cube_sum(s_dy_x, block);
        let t_x = cube_sum(s_x, block);
        if UNIT_POS == 0 {
            sums[c] = t_dy;
            sums[sets + c] = t_dy_x;
            sums[2 * sets + c] = t_x;
        }
    }

    /// BatchNorm's backward coefficients per channel. With `lo = Σ(x - μ)/m` (the rest of the
    /// exact mean, for batch statistics) and `S₂ = Σdy·(x - μ) - lo·Σdy`:
    /// `dx = dy·k_dy + ((x - μ) - lo)·k_x + k_0`, `k_dy = γr`, `k_x = -γr³S₂/m`,
    /// `k_0 = -γrΣdy/m`; `dγ = S₂·r`, `dβ = Σdy`. Running statistics are constants
    /// (`inv_count = 0`): `dx = γr·dy`. Writes `[k_dy; k_x; k_0; lo]` (`[4, C]`).
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
    ) {
        let c = ABSOLUTE_POS;
        if c < channels {
            let r = 1.0f32 / (variance[c] + epsilon).sqrt();
            let s_dy = sums[c];
            let lo = sums[2 * channels + c] * inv_count;
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

    /// `dx = dy·k_dy + ((x - μ) - lo)·k_x + k_0` per channel, one unit per value.
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
    ) {
        let i = ABSOLUTE_POS;
        if i < len {
            let c = (i / spatial) % channels;
            let centred = (x[i] - mean[c]) - coefficients[3 * channels + c];
            dx[i] = dy[i] * coefficients[c]
                + centred * coefficients[channels + c]
                + coefficients[2 * channels + c];
        }
    }

    /// Per row of `K` values, `g = dy·γ` about the saved mean `μ`: `[Σg; Σg·(x - μ);
    /// Σ(x - μ)]` (`[3, rows]`). One cube per row.
    #[cube(launch)]
    pub(super) fn row_grad_sums(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        mean: &[f32],
        sums: &mut [f32],
        rows: usize,
        row_len: usize,
        channels: usize,
        spatial: usize,
        #[comptime] block: usize,
    ) {
        let row = CUBE_POS;
        if row >= rows {
            terminate!();
        }
        let start = row * row_len;
        let step = CUBE_DIM as usize;
        let mu = mean[row];
        let mut s_g = 0.0f32;
        let mut s_g_x = 0.0f32;
        let mut s_x = 0.0f32;
        let mut j = UNIT_POS as usize;
        while j < row_len {
            let idx = start + j;
            let g = dy[idx] * gamma[(idx / spatial) % channels];
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
            sums[row] = t_g;
            sums[rows + row] = t_g_x;
            sums[2 * rows + row] = t_x;
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
}

/// Whether `FloatTensor<Cube>` is `CubeTensor`: true unless Burn's `fusion` feature is on in
/// the build (then `Cube` is `Fusion<CubeBackend>`, whose tensors are lazy `FusionTensor`s,
/// and the ops take the composed path, which fusion records like any other).
fn unfused() -> bool {
    TypeId::of::<FloatTensor<Cube>>() == TypeId::of::<CubeTensor>()
}

/// `value` as `B`, which must be its own type: the identity between `FloatTensor<Cube>` and
/// `CubeTensor` that [`unfused`] checked, written so that it also compiles when they differ.
fn retype<A: Any, B: Any>(value: A) -> B {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .and_then(Option::take)
        .expect("FloatTensor<Cube> is CubeTensor (checked by `runs_kernels`)")
}

/// Whether the kernels take this call: unfused, and every tensor `f32`.
fn runs_kernels(tensors: &[&FloatTensor<Cube>]) -> bool {
    unfused() && tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn contiguous(t: FloatTensor<Cube>) -> CubeTensor {
    into_contiguous(retype(t))
}

/// `N, C, S` of a `[N, C, ...]` shape.
fn channel_dims(shape: &Shape) -> (usize, usize, usize) {
    let (n, c) = (shape[0], shape[1]);
    (n, c, shape.num_elements() / (n * c).max(1))
}

/// Units per cube: 256, or the largest power of two the device allows. The tree reduction
/// needs a power of two.
fn block_size(client: &Client) -> u32 {
    let max = (client.properties().hardware.max_units_per_cube).clamp(1, 256);
    1 << max.ilog2()
}

/// One cube per set, spread over the y and z axes past the per-axis limit (65535 on wgpu);
/// the kernels skip the surplus cubes.
fn per_set(client: &Client, sets: usize) -> CubeCount {
    CubeCountSelection::new(client, sets as u32).cube_count()
}

/// One unit per value, `block` units per cube.
fn per_value(client: &Client, len: usize, block: u32) -> CubeCount {
    calculate_cube_count_elemwise(client, len, CubeDim::new_1d(block))
}

/// A kernel argument reading or writing all of `t` (a handle clone).
fn arg(t: &CubeTensor) -> BufferArg {
    t.clone().into_buffer_arg()
}

/// A contiguous, uninitialized `f32` tensor of `len` values (or `shape`) on `like`'s device.
fn alloc(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

fn vector(like: &CubeTensor, len: usize) -> CubeTensor {
    alloc(like, Shape::new([len]))
}

fn recip(m: usize) -> f32 {
    (1.0 / m as f64) as f32
}

/// `(mean, variance, [hi; lo])` of the `sets` sets of `x` (see [`kernels`]).
fn set_moments(
    x: &CubeTensor,
    sets: usize,
    spatial: usize,
    count: usize,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (client, block) = (&x.client, block_size(&x.client));
    let (mean, var, centre) = (vector(x, sets), vector(x, sets), vector(x, 2 * sets));
    kernels::set_moments::launch(
        client,
        per_set(client, sets),
        CubeDim::new_1d(block),
        arg(x),
        arg(&mean),
        arg(&var),
        arg(&centre),
        sets,
        spatial,
        count,
        recip(count),
        block as usize,
    );
    (mean, var, centre)
}

/// BatchNorm's `y` for the centre `[hi; lo]` (`split`) or the mean, and the variance.
fn channel_affine(
    x: &CubeTensor,
    centre: &CubeTensor,
    var: &CubeTensor,
    (gamma, beta): (&CubeTensor, &CubeTensor),
    epsilon: f64,
    split: bool,
) -> CubeTensor {
    let shape = x.shape();
    let (_, c, s) = channel_dims(&shape);
    let len = shape.num_elements();
    let (client, block) = (&x.client, block_size(&x.client));
    let dim = CubeDim::new_1d(block);
    let coefficients = vector(x, 4 * c);
    kernels::affine_coefficients::launch(
        client,
        per_value(client, c, block),
        dim,
        arg(centre),
        arg(var),
        arg(gamma),
        arg(beta),
        arg(&coefficients),
        c,
        epsilon as f32,
        split,
    );
    let y = alloc(x, shape);
    kernels::channel_affine::launch(
        client,
        per_value(client, len, block),
        dim,
        arg(x),
        arg(&coefficients),
        arg(&y),
        c,
        s,
        len,
    );
    y
}

fn batch_norm_train(
    x: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    epsilon: f64,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let x = into_contiguous(x);
    let (n, c, s) = channel_dims(&x.shape());
    let (mean, var, centre) = set_moments(&x, c, s, n * s);
    let affine = (&into_contiguous(gamma), &into_contiguous(beta));
    let y = channel_affine(&x, &centre, &var, affine, epsilon, true);
    (y, mean, var)
}

#[allow(clippy::too_many_arguments)]
fn batch_norm_backward(
    x: CubeTensor,
    gamma: CubeTensor,
    mean: CubeTensor,
    var: CubeTensor,
    epsilon: f64,
    dy: CubeTensor,
    batch_stats: bool,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (x, dy, mean) = (
        into_contiguous(x),
        into_contiguous(dy),
        into_contiguous(mean),
    );
    let shape = x.shape();
    let (n, c, s) = channel_dims(&shape);
    let len = shape.num_elements();
    let client = x.client.clone();
    let block = block_size(&client);
    let dim = CubeDim::new_1d(block);

    let sums = vector(&x, 3 * c);
    kernels::grad_sums::launch(
        &client,
        per_set(&client, c),
        dim,
        arg(&x),
        arg(&dy),
        arg(&mean),
        arg(&sums),
        c,
        s,
        n * s,
        block as usize,
    );
    let (coefficients, dgamma, dbeta) = (vector(&x, 4 * c), vector(&x, c), vector(&x, c));
    kernels::channel_grad_coefficients::launch(
        &client,
        per_value(&client, c, block),
        dim,
        arg(&sums),
        arg(&into_contiguous(var)),
        arg(&into_contiguous(gamma)),
        arg(&coefficients),
        arg(&dgamma),
        arg(&dbeta),
        c,
        epsilon as f32,
        if batch_stats { recip(n * s) } else { 0.0 },
    );
    let dx = alloc(&x, shape);
    kernels::channel_grad_dx::launch(
        &client,
        per_value(&client, len, block),
        dim,
        arg(&x),
        arg(&dy),
        arg(&mean),
        arg(&coefficients),
        arg(&dx),
        c,
        s,
        len,
    );
    (dx, dgamma, dbeta)
}

/// `N·G` rows of `K = (C/G)·S` values of a `[N, C, ...]` shape in `groups` groups.
fn row_dims(shape: &Shape, groups: usize) -> (usize, usize) {
    let (n, c, s) = channel_dims(shape);
    (n * groups, c / groups * s)
}

fn group_norm(
    x: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    groups: usize,
    epsilon: f64,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let x = into_contiguous(x);
    let shape = x.shape();
    let (_, c, s) = channel_dims(&shape);
    let (rows, row_len) = row_dims(&shape, groups);
    let len = shape.num_elements();
    let (mean, var, centre) = set_moments(&x, rows, row_len, row_len);
    let (client, block) = (&x.client, block_size(&x.client));
    let y = alloc(&x, shape);
    kernels::row_affine::launch(
        client,
        per_value(client, len, block),
        CubeDim::new_1d(block),
        arg(&x),
        arg(&centre),
        arg(&var),
        arg(&into_contiguous(gamma)),
        arg(&into_contiguous(beta)),
        arg(&y),
        rows,
        row_len,
        c,
        s,
        len,
        epsilon as f32,
    );
    (y, mean, var)
}

#[allow(clippy::too_many_arguments)]
fn group_norm_backward(
    x: CubeTensor,
    gamma: CubeTensor,
    mean: CubeTensor,
    var: CubeTensor,
    groups: usize,
    epsilon: f64,
    dy: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (x, dy, mean) = (
        into_contiguous(x),
        into_contiguous(dy),
        into_contiguous(mean),
    );
    let gamma = into_contiguous(gamma);
    let shape = x.shape();
    let (n, c, s) = channel_dims(&shape);
    let (rows, row_len) = row_dims(&shape, groups);
    let len = shape.num_elements();
    let client = x.client.clone();
    let block = block_size(&client);
    let dim = CubeDim::new_1d(block);

    let sums = vector(&x, 3 * rows);
    kernels::row_grad_sums::launch(
        &client,
        per_set(&client, rows),
        dim,
        arg(&x),
        arg(&dy),
        arg(&gamma),
        arg(&mean),
        arg(&sums),
        rows,
        row_len,
        c,
        s,
        block as usize,
    );
    let coefficients = vector(&x, 4 * rows);
    kernels::row_grad_coefficients::launch(
        &client,
        per_value(&client, rows, block),
        dim,
        arg(&sums),
        arg(&into_contiguous(var)),
        arg(&coefficients),
        rows,
        recip(row_len),
        epsilon as f32,
    );
    let (dgamma, dbeta) = (vector(&x, c), vector(&x, c));
    kernels::group_affine_grad::launch(
        &client,
        per_set(&client, c),
        dim,
        arg(&x),
        arg(&dy),
        arg(&mean),
        arg(&coefficients),
        arg(&dgamma),
        arg(&dbeta),
        rows,
        c,
        s,
        n * s,
        c / groups,
        block as usize,
    );
    let dx = alloc(&x, shape);
    kernels::row_grad_dx::launch(
        &client,
        per_value(&client, len, block),
        dim,
        arg(&x),
        arg(&dy),
        arg(&gamma),
        arg(&mean),
        arg(&coefficients),
        arg(&dx),
        rows,
        row_len,
        c,
        s,
        len,
    );
    (dx, dgamma, dbeta)
}

impl NormKernels for Cube {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &beta]) {
            return composed::batch_norm_train_fused::<Self>(x, gamma, beta, epsilon);
        }
        let (y, mean, var) = batch_norm_train(retype(x), retype(gamma), retype(beta), epsilon);
        (retype(y), retype(mean), retype(var))
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if !runs_kernels(&[&x, &gamma, &beta, &mean, &var]) {
            return composed::batch_norm_eval_fused::<Self>(x, gamma, beta, mean, var, epsilon);
        }
        let affine = (&contiguous(gamma), &contiguous(beta));
        let (mean, var) = (contiguous(mean), contiguous(var));
        retype(channel_affine(
            &contiguous(x),
            &mean,
            &var,
            affine,
            epsilon,
            false,
        ))
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &beta]) {
            return composed::group_norm_fused::<Self>(x, gamma, beta, groups, epsilon);
        }
        let (y, mean, var) = group_norm(retype(x), retype(gamma), retype(beta), groups, epsilon);
        (retype(y), retype(mean), retype(var))
    }
}

impl NormGradKernels for Cube {
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
        batch_stats: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &mean, &var, &dy]) {
            return composed::batch_norm_fused_backward::<Self>(
                x,
                gamma,
                mean,
                var,
                epsilon,
                dy,
                batch_stats,
            );
        }
        let (dx, dgamma, dbeta) = batch_norm_backward(
            retype(x),
            retype(gamma),
            retype(mean),
            retype(var),
            epsilon,
            retype(dy),
            batch_stats,
        );
        (retype(dx), retype(dgamma), retype(dbeta))
    }

    fn group_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !runs_kernels(&[&x, &gamma, &mean, &var, &dy]) {
            return composed::group_norm_fused_backward::<Self>(
                x, gamma, mean, var, groups, epsilon, dy,
            );
        }
        let (dx, dgamma, dbeta) = group_norm_backward(
            retype(x),
            retype(gamma),
            retype(mean),
            retype(var),
            groups,
            epsilon,
            retype(dy),
        );
        (retype(dx), retype(dgamma), retype(dbeta))
    }
}
