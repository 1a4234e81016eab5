//! The kernels on Burn's flex CPU backend: [`pool`](super::pool)'s and
//! [`conv`](super::conv)'s slice arithmetic on the tensors' contiguous storage, for `f32` and
//! `f64`. Other dtypes, and shapes the kernels don't cover, take Burn's ops.

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Element, TensorMetadata};
use burn::tensor::{Bytes, DType, Shape};

use super::conv::{self, ConvDims};
use super::pool::{self, Planes};
use super::{
    ModelGradKernels, ModelKernels, burn_avg_pool_2x2, burn_avg_pool_2x2_backward,
    burn_conv2d_valid, burn_conv2d_valid_backward,
};

/// An element type the kernels compute in.
trait FlexReal: Element + bytemuck::Pod + pool::Real + conv::Real {
    fn from_f64(value: f64) -> Self;
}

impl FlexReal for f32 {
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl FlexReal for f64 {
    fn from_f64(value: f64) -> Self {
        value
    }
}

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

fn tensor<E: FlexReal>(data: Vec<E>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        E::dtype(),
    )
}

fn tensor_f64<E: FlexReal>(data: &[f64], shape: Shape) -> FlexTensor {
    tensor(
        data.iter().map(|&v| E::from_f64(v)).collect::<Vec<E>>(),
        shape,
    )
}

/// The dtype the kernels compute in, when every tensor shares one they support.
fn kernel_dtype(tensors: &[&FlexTensor]) -> Option<DType> {
    let dtype = tensors[0].dtype();
    (matches!(dtype, DType::F32 | DType::F64) && tensors.iter().all(|t| t.dtype() == dtype))
        .then_some(dtype)
}

/// Whether any of the tensors has no elements (the kernels leave those to Burn's ops).
fn any_empty(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().any(|t| t.shape().num_elements() == 0)
}

fn planes(shape: &Shape) -> Planes {
    Planes {
        count: shape[0] * shape[1],
        h: shape[2],
        w: shape[3],
    }
}

fn avg_pool_2x2<E: FlexReal>(x: FlexTensor) -> FlexTensor {
    let shape = x.shape();
    let p = planes(&shape);
    let out = pool::avg_pool_2x2(values::<E>(&contiguous(x)), p);
    tensor(out, Shape::new([shape[0], shape[1], p.oh(), p.ow()]))
}

fn avg_pool_2x2_backward<E: FlexReal>(x_shape: Shape, dy: FlexTensor) -> FlexTensor {
    let dx = pool::avg_pool_2x2_backward(values::<E>(&contiguous(dy)), planes(&x_shape));
    tensor(dx, x_shape)
}

fn conv_dims(x: &Shape, weight: &Shape) -> ConvDims {
    ConvDims {
        n: x[0],
        ci: x[1],
        h: x[2],
        w: x[3],
        co: weight[0],
        kh: weight[2],
        kw: weight[3],
    }
}

fn conv2d_valid<E: FlexReal>(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
    let d = conv_dims(&x.shape(), &weight.shape());
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    let y = conv::conv2d_forward(values::<E>(&x), values::<E>(&weight), values::<E>(&bias), d);
    tensor(y, Shape::new([d.n, d.co, d.h + 1 - d.kh, d.w + 1 - d.kw]))
}

fn conv2d_valid_backward<E: FlexReal>(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    with_dx: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    let (x_shape, w_shape) = (x.shape(), weight.shape());
    let d = conv_dims(&x_shape, &w_shape);
    let (x, weight, dy) = (contiguous(x), contiguous(weight), contiguous(dy));
    let grads = conv::conv2d_backward(
        values::<E>(&x),
        values::<E>(&weight),
        values::<E>(&dy),
        d,
        with_dx,
    );
    (
        grads.dx.map(|dx| tensor(dx, x_shape)),
        tensor_f64::<E>(&grads.dw, w_shape),
        tensor_f64::<E>(&grads.db, Shape::new([d.co])),
    )
}

impl ModelKernels for Flex {
    fn avg_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match kernel_dtype(&[&x]) {
            Some(DType::F32) => avg_pool_2x2::<f32>(x),
            Some(DType::F64) => avg_pool_2x2::<f64>(x),
            _ => burn_avg_pool_2x2::<Self>(x),
        }
    }

    fn conv2d_valid(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let empty = any_empty(&[&x, &weight]);
        match kernel_dtype(&[&x, &weight, &bias]) {
            Some(DType::F32) if !empty => conv2d_valid::<f32>(x, weight, bias),
            Some(DType::F64) if !empty => conv2d_valid::<f64>(x, weight, bias),
            _ => burn_conv2d_valid::<Self>(x, weight, bias),
        }
    }
}

impl ModelGradKernels for Flex {
    fn avg_pool_2x2_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        match kernel_dtype(&[&x, &dy]) {
            Some(DType::F32) => avg_pool_2x2_backward::<f32>(x.shape(), dy),
            Some(DType::F64) => avg_pool_2x2_backward::<f64>(x.shape(), dy),
            _ => burn_avg_pool_2x2_backward::<Self>(x, dy),
        }
    }

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
        let empty = any_empty(&[&x, &weight]);
        match kernel_dtype(&[&x, &weight, &bias, &dy]) {
            Some(DType::F32) if !empty => conv2d_valid_backward::<f32>(x, weight, dy, with_dx),
            Some(DType::F64) if !empty => conv2d_valid_backward::<f64>(x, weight, dy, with_dx),
            _ => burn_conv2d_valid_backward::<Self>(x, weight, bias, dy, with_dx),
        }
    }
}
