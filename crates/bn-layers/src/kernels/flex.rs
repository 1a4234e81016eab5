//! The kernels on Burn's flex CPU backend: [`cpu`](super::cpu)'s slice arithmetic on the
//! tensors' contiguous storage, for `f32` and `f64`. Other dtypes take the composed path.
//!
//! Buffers: a forward allocates its output and the small statistics; evaluation writes into
//! the input's buffer when the tensor owns it alone; a backward writes `dx` into the upstream
//! gradient's buffer when it owns that (autodiff hands over gradients it no longer needs).

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Element, TensorMetadata};
use burn::tensor::{Bytes, DType, Shape};

use super::cpu::{self, ChannelAffine, ChannelDims, ChannelGrad, Real, RowDims};
use super::{NormGradKernels, NormKernels, composed};
use crate::Activation;

/// An element type the flex kernels compute in.
trait FlexReal: Real + Element + bytemuck::Pod {}
impl FlexReal for f32 {}
impl FlexReal for f64 {}

/// `[N, C, S]` of a `[N, C, ...]` shape.
fn channel_dims(shape: &Shape) -> ChannelDims {
    let (n, c) = (shape[0], shape[1]);
    let s = shape.num_elements() / (n * c).max(1);
    ChannelDims { n, c, s }
}

/// The tensor's values in row-major order, copied only when its layout is not contiguous.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values<E: FlexReal>(t: &FlexTensor) -> &[E] {
    t.as_slice::<E>()
        .expect("a contiguous tensor of the kernel's dtype")
}

/// A small per-channel vector (γ, β, statistics) in f64.
fn to_f64<E: FlexReal>(t: FlexTensor) -> Vec<f64> {
    values::<E>(&contiguous(t))
        .iter()
        .map(|v| v.to_f64())
        .collect()
}

fn tensor<E: FlexReal>(data: Vec<E>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        E::dtype(),
    )
}

fn tensor_f64<E: FlexReal>(data: &[f64]) -> FlexTensor {
    let data: Vec<E> = data.iter().map(|&v| E::from_f64(v)).collect();
    let len = data.len();
    tensor(data, Shape::new([len]))
}

/// A kernel's output of `shape` on a fresh buffer ([`cpu::zeroed`]), `kernel` writing every
/// value of it, and what `kernel` returns.
fn new_output<E: FlexReal, R>(shape: Shape, kernel: impl FnOnce(&mut [E]) -> R) -> (FlexTensor, R) {
    let mut out = cpu::zeroed::<E>(shape.num_elements());
    let result = kernel(&mut out);
    (tensor(out, shape), result)
}

/// Whether `t` owns a contiguous buffer of exactly its elements, so it can be overwritten.
fn owns_its_buffer(t: &FlexTensor) -> bool {
    let size = t.dtype().size();
    t.is_unique()
        && t.layout().contiguous_offsets() == Some((0, t.shape().num_elements()))
        && t.bytes().len() == t.shape().num_elements() * size
}

/// Runs `kernel(out, src)` over a buffer for the result: `src`'s own when it can be
/// overwritten (`kernel` then gets `None` and transforms `out` in place), else a fresh one.
fn write_over<E: FlexReal>(
    src: FlexTensor,
    kernel: impl FnOnce(&mut [E], Option<&[E]>),
) -> FlexTensor {
    let shape = src.shape();
    if owns_its_buffer(&src) {
        let mut out = src;
        kernel(
            out.try_storage_mut::<E>().expect("checked unique above"),
            None,
        );
        out
    } else {
        let src = contiguous(src);
        new_output::<E, ()>(shape, |out| kernel(out, Some(values::<E>(&src)))).0
    }
}

fn batch_norm_train_fused<E: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    activation: Option<Activation>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.shape();
    let d = channel_dims(&shape);
    let x = contiguous(x);
    let input = values::<E>(&x);
    let (mean, var) = cpu::channel_moments(input, d);
    let scale: Vec<f64> = (to_f64::<E>(gamma).iter().zip(&var))
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let k = ChannelAffine::<E>::new(&mean, &scale, &to_f64::<E>(beta), activation);
    let (out, ()) = new_output::<E, ()>(shape, |out| {
        cpu::apply_channel_affine(out, Some(input), d, &k);
    });
    (out, tensor_f64::<E>(&mean), tensor_f64::<E>(&var))
}

fn batch_norm_eval_fused<E: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    (mean, var): (FlexTensor, FlexTensor),
    epsilon: f64,
    activation: Option<Activation>,
) -> FlexTensor {
    let d = channel_dims(&x.shape());
    let mean = to_f64::<E>(mean);
    let scale: Vec<f64> = (to_f64::<E>(gamma).iter().zip(&to_f64::<E>(var)))
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let k = ChannelAffine::<E>::new(&mean, &scale, &to_f64::<E>(beta), activation);
    write_over::<E>(x, |out, src| cpu::apply_channel_affine(out, src, d, &k))
}

#[allow(clippy::too_many_arguments)]
fn batch_norm_fused_backward<E: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    epsilon: f64,
    dy: FlexTensor,
    batch_stats: bool,
    activated: Option<(Activation, FlexTensor)>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    // The gradient before the activation, over dy's buffer where it can be.
    let dy = match activated {
        Some((activation, y)) => {
            let y = contiguous(y);
            write_over::<E>(dy, |out, dy| {
                cpu::apply_activation_grad(out, values::<E>(&y), dy, activation)
            })
        }
        None => dy,
    };
    let d = channel_dims(&x.shape());
    let m = (d.n * d.s) as f64;
    let x = contiguous(x);
    let input = values::<E>(&x);
    let mean = to_f64::<E>(mean);
    let rstd: Vec<f64> = to_f64::<E>(var)
        .iter()
        .map(|v| 1.0 / (v + epsilon).sqrt())
        .collect();
    let gamma = to_f64::<E>(gamma);
    let dy = contiguous(dy);
    let mut sums = cpu::channel_grad_sums(input, values::<E>(&dy), &mean, d);
    let k_dy: Vec<f64> = gamma.iter().zip(&rstd).map(|(g, r)| g * r).collect();
    let dx = if batch_stats {
        // The batch mean was saved rounded to E; the sums restore it exactly.
        let mean = sums.recentre(&mean, m);
        // dx = γr·dy + (x - μ)·k_x + k_0, with k_x = -γr³ Σdy(x-μ)/m and k_0 = -γr Σdy/m:
        // the statistics are the batch's, so they depend on x.
        let (k_x, k_0): (Vec<f64>, Vec<f64>) = (0..d.c)
            .map(|ch| {
                let r = rstd[ch];
                (
                    -k_dy[ch] * r * r * sums.dy_x[ch] / m,
                    -k_dy[ch] * sums.dy[ch] / m,
                )
            })
            .unzip();
        let k = ChannelGrad::<E>::new(&mean, &k_dy, &k_x, &k_0);
        write_over::<E>(dy, |out, dy| cpu::apply_channel_grad(out, input, dy, d, &k))
    } else {
        // Constant statistics: dx = γr·dy, with no term in x, so a NaN or infinite running
        // mean (or input) leaves dx as finite as PyTorch's.
        let zeros = vec![0.0; d.c];
        let k = ChannelAffine::<E>::new(&zeros, &k_dy, &zeros, None);
        write_over::<E>(dy, |out, dy| cpu::apply_channel_affine(out, dy, d, &k))
    };
    let (s1, s2) = (&sums.dy, &sums.dy_x);
    let dgamma: Vec<f64> = s2.iter().zip(&rstd).map(|(s, r)| s * r).collect();
    (dx, tensor_f64::<E>(&dgamma), tensor_f64::<E>(s1))
}

/// The row view of a `[N, C, ...]` input split into `groups` groups per sample.
fn row_dims(shape: &Shape, groups: usize) -> RowDims {
    let ChannelDims { c, s, .. } = channel_dims(shape);
    RowDims {
        groups,
        channels_per_group: c / groups,
        s,
    }
}

fn group_norm_fused<E: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    groups: usize,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.shape();
    let d = row_dims(&shape, groups);
    let x = contiguous(x);
    let (gamma, beta) = (to_f64::<E>(gamma), to_f64::<E>(beta));
    let (out, (mean, var)) = new_output::<E, _>(shape, |out| {
        cpu::row_norm(out, values::<E>(&x), d, &gamma, &beta, epsilon)
    });
    (out, tensor_f64::<E>(&mean), tensor_f64::<E>(&var))
}

#[allow(clippy::too_many_arguments)]
fn group_norm_fused_backward<E: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    groups: usize,
    epsilon: f64,
    dy: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let d = row_dims(&x.shape(), groups);
    let x = contiguous(x);
    let (gamma, mean, var) = (to_f64::<E>(gamma), to_f64::<E>(mean), to_f64::<E>(var));
    let mut sums = (Vec::new(), Vec::new());
    let dx = write_over::<E>(dy, |out, dy| {
        sums = cpu::row_norm_backward(out, values::<E>(&x), dy, d, &gamma, &mean, &var, epsilon);
    });
    (dx, tensor_f64::<E>(&sums.0), tensor_f64::<E>(&sums.1))
}

/// The dtype the kernels compute in, when every tensor shares one they support.
fn kernel_dtype(tensors: &[&FlexTensor]) -> Option<DType> {
    let dtype = tensors[0].dtype();
    (matches!(dtype, DType::F32 | DType::F64) && tensors.iter().all(|t| t.dtype() == dtype))
        .then_some(dtype)
}

impl NormKernels for Flex {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match kernel_dtype(&[&x, &gamma, &beta]) {
            Some(DType::F32) => batch_norm_train_fused::<f32>(x, gamma, beta, epsilon, activation),
            Some(DType::F64) => batch_norm_train_fused::<f64>(x, gamma, beta, epsilon, activation),
            _ => composed::batch_norm_train_fused::<Self>(x, gamma, beta, epsilon, activation),
        }
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> FloatTensor<Self> {
        let (stats, act) = ((mean, var), activation);
        match kernel_dtype(&[&x, &gamma, &beta, &stats.0, &stats.1]) {
            Some(DType::F32) => batch_norm_eval_fused::<f32>(x, gamma, beta, stats, epsilon, act),
            Some(DType::F64) => batch_norm_eval_fused::<f64>(x, gamma, beta, stats, epsilon, act),
            _ => {
                let (mean, var) = stats;
                composed::batch_norm_eval_fused::<Self>(x, gamma, beta, mean, var, epsilon, act)
            }
        }
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match kernel_dtype(&[&x, &gamma, &beta]) {
            Some(DType::F32) => group_norm_fused::<f32>(x, gamma, beta, groups, epsilon),
            Some(DType::F64) => group_norm_fused::<f64>(x, gamma, beta, groups, epsilon),
            _ => composed::group_norm_fused::<Self>(x, gamma, beta, groups, epsilon),
        }
    }
}

impl NormGradKernels for Flex {
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
        batch_stats: bool,
        activated: Option<(Activation, FloatTensor<Self>)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let stats = batch_stats;
        let mut tensors = vec![&x, &gamma, &mean, &var, &dy];
        tensors.extend(activated.as_ref().map(|(_, y)| y));
        match kernel_dtype(&tensors) {
            Some(DType::F32) => {
                batch_norm_fused_backward::<f32>(x, gamma, mean, var, epsilon, dy, stats, activated)
            }
            Some(DType::F64) => {
                batch_norm_fused_backward::<f64>(x, gamma, mean, var, epsilon, dy, stats, activated)
            }
            _ => composed::batch_norm_fused_backward::<Self>(
                x, gamma, mean, var, epsilon, dy, stats, activated,
            ),
        }
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
        match kernel_dtype(&[&x, &gamma, &mean, &var, &dy]) {
            Some(DType::F32) => {
                group_norm_fused_backward::<f32>(x, gamma, mean, var, groups, epsilon, dy)
            }
            Some(DType::F64) => {
                group_norm_fused_backward::<f64>(x, gamma, mean, var, groups, epsilon, dy)
            }
            _ => composed::group_norm_fused_backward::<Self>(
                x, gamma, mean, var, groups, epsilon, dy,
            ),
        }
    }
}
