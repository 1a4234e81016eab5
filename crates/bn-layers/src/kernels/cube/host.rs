//! The host side: inputs made contiguous, outputs allocated, the kernels of [`device`]
//! launched in order on the tensors' client.

use burn::backend::{Shape, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::{BufferArg, Client, CubeCount, CubeDim};
use cubecl::server::CubeCountSelection;

use super::device;

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

/// `(mean, variance, [hi; lo])` of the `sets` sets of `x` (see [`device`]).
fn set_moments(
    x: &CubeTensor,
    sets: usize,
    spatial: usize,
    count: usize,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (client, block) = (&x.client, block_size(&x.client));
    let (mean, var, centre) = (vector(x, sets), vector(x, sets), vector(x, 2 * sets));
    device::set_moments::launch(
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
    device::affine_coefficients::launch(
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
    device::channel_affine::launch(
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

pub(super) fn batch_norm_train(
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

/// BatchNorm in evaluation: `y` with the given statistics (constants).
pub(super) fn batch_norm_eval(
    x: CubeTensor,
    (gamma, beta): (CubeTensor, CubeTensor),
    mean: CubeTensor,
    var: CubeTensor,
    epsilon: f64,
) -> CubeTensor {
    let affine = (&into_contiguous(gamma), &into_contiguous(beta));
    let (mean, var) = (into_contiguous(mean), into_contiguous(var));
    channel_affine(&into_contiguous(x), &mean, &var, affine, epsilon, false)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn batch_norm_backward(
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
    let gamma = into_contiguous(gamma);
    device::grad_sums::launch(
        &client,
        per_set(&client, c),
        dim,
        arg(&x),
        arg(&dy),
        arg(&gamma),
        arg(&mean),
        arg(&sums),
        c,
        s,
        n * s,
        c,
        s,
        false,
        block as usize,
    );
    let (coefficients, dgamma, dbeta) = (vector(&x, 4 * c), vector(&x, c), vector(&x, c));
    device::channel_grad_coefficients::launch(
        &client,
        per_value(&client, c, block),
        dim,
        arg(&sums),
        arg(&into_contiguous(var)),
        arg(&gamma),
        arg(&coefficients),
        arg(&dgamma),
        arg(&dbeta),
        c,
        epsilon as f32,
        recip(n * s),
        batch_stats,
    );
    let dx = alloc(&x, shape);
    device::channel_grad_dx::launch(
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
        batch_stats,
    );
    (dx, dgamma, dbeta)
}

/// `N·G` rows of `K = (C/G)·S` values of a `[N, C, ...]` shape in `groups` groups.
fn row_dims(shape: &Shape, groups: usize) -> (usize, usize) {
    let (n, c, s) = channel_dims(shape);
    (n * groups, c / groups * s)
}

pub(super) fn group_norm(
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
    device::row_affine::launch(
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
pub(super) fn group_norm_backward(
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
    // The rows of `[N·G, K]` are the sets of `[1, N·G, K]`.
    device::grad_sums::launch(
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
        row_len,
        c,
        s,
        true,
        block as usize,
    );
    let coefficients = vector(&x, 4 * rows);
    device::row_grad_coefficients::launch(
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
    device::group_affine_grad::launch(
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
    device::row_grad_dx::launch(
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
