//! Kernels for the LeNet's own layers where Burn's flex defaults cost the most in the main
//! job (measured in `docs/performance.md`), as a Burn backend extension with one autodiff
//! node per op:
//!
//! | op | forward | backward |
//! |---|---|---|
//! | `avg_pool_2x2` | kernel: rayon over planes, one read of the input | kernel: every `dx` written once |
//! | `conv2d_valid` (stride 1, no padding) | kernel: direct, channel × strip blocks in registers, rayon over samples | kernel: direct, `dW` and `dx` blocks in registers, one rayon task per thread |
//!
//! Flex runs the kernels (`f32`, `f64`); every other backend, and other dtypes, run Burn's
//! own ops and their backwards.

// The generated dispatch names NdArray, deprecated upstream.
#![allow(deprecated)]

mod autodiff;
#[cfg(feature = "flex")]
mod conv;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod pool;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDeviceId, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::AvgPool2dConfig;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// Burn's `avg_pool2d` arguments for the pooling here: kernel, stride, padding,
/// `count_include_pad`, `ceil_mode`.
const KERNEL: [usize; 2] = [2, 2];
const STRIDE: [usize; 2] = [2, 2];
const PADDING: [usize; 2] = [0, 0];

/// Burn's options for a convolution with stride 1, no padding, no dilation, one group.
fn valid_options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
}

/// The model's ops, as a Burn backend extension: flex overrides them, `Autodiff` records
/// each as one node whose backward is [`ModelGradKernels`].
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait ModelKernels: Backend {
    /// 2×2 average pooling with stride 2 and no padding of `x: [N, C, H, W]`, giving
    /// `[N, C, H/2, W/2]` (rounded down): Burn's `AvgPool2d` with kernel and stride `[2, 2]`.
    fn avg_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_avg_pool_2x2::<Self>(x)
    }

    /// `conv(x, weight) + bias` with stride 1, no padding, no dilation and one group:
    /// `x: [N, C_in, H, W]`, `weight: [C_out, C_in, KH, KW]`, `bias: [C_out]`, giving
    /// `[N, C_out, H - KH + 1, W - KW + 1]`.
    fn conv2d_valid(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burn_conv2d_valid::<Self>(x, weight, bias)
    }
}

/// The backwards of [`ModelKernels`]' ops.
pub trait ModelGradKernels: Backend {
    /// `dx` of [`ModelKernels::avg_pool_2x2`] for the output gradient `dy`, `x` its input.
    fn avg_pool_2x2_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_avg_pool_2x2_backward::<Self>(x, dy)
    }

    /// `(dx, dweight, dbias)` of [`ModelKernels::conv2d_valid`] for the output gradient
    /// `dy`; `dx` only `with_dx`.
    fn conv2d_valid_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        with_dx: bool,
    ) -> (
        Option<FloatTensor<Self>>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        burn_conv2d_valid_backward::<Self>(x, weight, bias, dy, with_dx)
    }
}

/// [`ModelKernels::avg_pool_2x2`] as Burn's own `avg_pool2d`.
fn burn_avg_pool_2x2<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::avg_pool2d(x, KERNEL, STRIDE, PADDING, true, false)
}

/// [`ModelGradKernels::avg_pool_2x2_backward`] as Burn's own `avg_pool2d_backward`.
fn burn_avg_pool_2x2_backward<B: Backend>(x: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    B::avg_pool2d_backward(x, dy, KERNEL, STRIDE, PADDING, true, false)
}

/// [`ModelKernels::conv2d_valid`] as Burn's own `conv2d`.
fn burn_conv2d_valid<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    B::conv2d(x, weight, Some(bias), valid_options())
}

/// [`ModelGradKernels::conv2d_valid_backward`] in Burn's own backward ops.
fn burn_conv2d_valid_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    dy: FloatTensor<B>,
    with_dx: bool,
) -> (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>) {
    let options = valid_options();
    let dx = with_dx
        .then(|| B::conv2d_x_backward(x.clone(), weight.clone(), dy.clone(), options.clone()));
    let dweight = B::conv2d_weight_backward(x.clone(), weight, dy.clone(), options);
    (dx, dweight, B::conv2d_bias_backward(x, bias, dy))
}

/// Whether this build has the kernels for the backend of `device` (flex, with or without
/// autodiff). Elsewhere the extension's dispatch would panic.
fn covers(device: &Device) -> bool {
    // The upper byte of a dispatch device's type id names its backend.
    let id = burn::backend::Device::to_id(device.as_dispatch()).type_id >> 8;
    cfg!(feature = "flex") && matches!(DispatchDeviceId::try_from(id), Ok(DispatchDeviceId::Flex))
}

/// 2×2 average pooling with stride 2, PyTorch's `nn.AvgPool2d(2)` and Burn's
/// `AvgPool2dConfig::new([2, 2]).with_strides([2, 2])`: [`ModelKernels::avg_pool_2x2`] where
/// this build has a kernel for the device, Burn's `avg_pool2d` elsewhere.
///
/// # Shapes
/// - input: `[N, C, H, W]`
/// - output: `[N, C, H / 2, W / 2]`, rounded down
pub fn avg_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    if covers(&x.device()) {
        Tensor::from_dispatch(<Dispatch as ModelKernels>::avg_pool_2x2(x.into_dispatch()))
    } else {
        AvgPool2dConfig::new(KERNEL)
            .with_strides(STRIDE)
            .init()
            .forward(x)
    }
}

/// `conv.forward(x)`, through [`ModelKernels::conv2d_valid`] where this build has a kernel
/// for the device and the convolution is one it covers (stride 1, no padding, no dilation,
/// one group, a bias); Burn's `Conv2d` elsewhere.
///
/// # Shapes
/// As [`Conv2d::forward`].
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let plain = conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Valid);
    let [_, _, h, w] = x.dims();
    let [_, _, kh, kw] = conv.weight.dims();
    match &conv.bias {
        Some(bias) if plain && h >= kh && w >= kw && covers(&x.device()) => {
            Tensor::from_dispatch(<Dispatch as ModelKernels>::conv2d_valid(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
            ))
        }
        _ => conv.forward(x),
    }
}
