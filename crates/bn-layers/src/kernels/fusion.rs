//! [`NormKernels`] and [`NormGradKernels`] on Burn's fusion backend (`Fusion<B>`: what
//! `burn::backend::Cube` is when Burn's `fusion` feature is on, as it is by default).
//!
//! Fusion records ops lazily and runs them later, in order, on the inner backend `B`. Each of
//! our ops becomes one opaque custom operation in that stream: registering it describes its
//! outputs (shape and dtype, known from the inputs' alone) and returns them at once; running
//! it calls `B`'s own implementation (the CubeCL kernels, or the composed path for dtypes
//! they do not take) on the inputs' handles. The scalar arguments travel in the operation's
//! description, as fusion's cache expects, not in the operation itself.
//!
//! The implementations are generic over any `B`, so they exist whether or not the user's
//! Burn has fusion on: the dispatch picks the one `burn::backend::Cube` names.

use std::marker::PhantomData;

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Shape};
use burn_fusion::custom::{
    CustomOpIr, HandleContainer, Operation, OperationIr, ScalarIr, StreamId, TensorIr,
};
use burn_fusion::{ExecutionError, Fusion, FusionBackend, FusionRuntime, FusionTensor};

use super::{NormGradKernels, NormKernels};
use crate::Activation;

const BATCH_NORM_TRAIN: &str = "bn_layers::batch_norm_train_fused";
const BATCH_NORM_EVAL: &str = "bn_layers::batch_norm_eval_fused";
const GROUP_NORM: &str = "bn_layers::group_norm_fused";
const BATCH_NORM_BACKWARD: &str = "bn_layers::batch_norm_fused_backward";
const GROUP_NORM_BACKWARD: &str = "bn_layers::group_norm_fused_backward";

/// The op registered in the fusion stream: it runs the inner backend's op named by `desc`.
#[derive(Debug)]
struct NormOp<B> {
    desc: CustomOpIr,
    _backend: PhantomData<B>,
}

impl<B: FusionBackend + NormKernels + NormGradKernels> Operation<B::FusionRuntime> for NormOp<B> {
    fn execute(
        &self,
        handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>,
    ) -> Result<(), ExecutionError> {
        execute::<B>(handles, &self.desc);
        Ok(())
    }
}

/// Queues op `id` on `inputs` (all on one fusion client) and returns its outputs, one per
/// `(shape, dtype)`.
fn register<B: FusionBackend + NormKernels + NormGradKernels, const N: usize>(
    id: &'static str,
    inputs: Vec<FusionTensor<B::FusionRuntime>>,
    outputs: [(Shape, DType); N],
    scalars: Vec<ScalarIr>,
) -> [FusionTensor<B::FusionRuntime>; N] {
    let client = inputs[0].client.clone();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(FusionTensor::into_ir).collect();
    let outputs =
        outputs.map(|(shape, dtype)| TensorIr::uninit(client.create_empty_handle(), shape, dtype));
    let desc = CustomOpIr::with_scalars(id, &inputs, &outputs, scalars);
    let op = NormOp::<B> {
        desc: desc.clone(),
        _backend: PhantomData,
    };
    let outputs = client.register(StreamId::current(), OperationIr::Custom(desc), op);
    outputs
        .try_into()
        .unwrap_or_else(|_| unreachable!("the op was described with {N} outputs"))
}

/// `(shape, dtype)` of `t`.
fn spec<T: TensorMetadata>(t: &T) -> (Shape, DType) {
    (t.shape(), t.dtype())
}

/// A `[len]` vector in `t`'s dtype.
fn vector<T: TensorMetadata>(t: &T, len: usize) -> (Shape, DType) {
    (Shape::new([len]), t.dtype())
}

fn activation_code(activation: Option<Activation>) -> ScalarIr {
    ScalarIr::UInt(match activation {
        None => 0,
        Some(Activation::Relu) => 1,
        Some(Activation::Sigmoid) => 2,
    })
}

fn activation(code: &ScalarIr) -> Option<Activation> {
    match code {
        ScalarIr::UInt(1) => Some(Activation::Relu),
        ScalarIr::UInt(2) => Some(Activation::Sigmoid),
        _ => None,
    }
}

/// The float scalar at `i` of `desc`.
fn float(desc: &CustomOpIr, i: usize) -> f64 {
    match desc.scalars[i] {
        ScalarIr::Float(v) => v,
        ref other => panic!("{}: scalar {i} is {other:?}, not a float", desc.id),
    }
}

/// The unsigned scalar at `i` of `desc`.
fn uint(desc: &CustomOpIr, i: usize) -> usize {
    match desc.scalars[i] {
        ScalarIr::UInt(v) => v as usize,
        ref other => panic!(
            "{}: scalar {i} is {other:?}, not an unsigned integer",
            desc.id
        ),
    }
}

/// Runs the op `desc` describes on the inner backend and publishes its outputs' handles.
fn execute<B: FusionBackend + NormKernels + NormGradKernels>(
    handles: &mut HandleContainer<B::Handle>,
    desc: &CustomOpIr,
) {
    let mut inputs = desc
        .inputs
        .iter()
        .map(|ir| handles.get_float_tensor::<B>(ir));
    let mut input = || inputs.next().expect("the op was described with this input");
    let results = match desc.id.as_str() {
        BATCH_NORM_TRAIN => {
            let (x, gamma, beta) = (input(), input(), input());
            let activation = activation(&desc.scalars[1]);
            let (y, mean, var) =
                B::batch_norm_train_fused(x, gamma, beta, float(desc, 0), activation);
            vec![y, mean, var]
        }
        BATCH_NORM_EVAL => {
            let (x, gamma, beta, mean, var) = (input(), input(), input(), input(), input());
            let activation = activation(&desc.scalars[1]);
            let eps = float(desc, 0);
            vec![B::batch_norm_eval_fused(
                x, gamma, beta, mean, var, eps, activation,
            )]
        }
        GROUP_NORM => {
            let (x, gamma, beta) = (input(), input(), input());
            let (y, mean, var) = B::group_norm_fused(x, gamma, beta, uint(desc, 0), float(desc, 1));
            vec![y, mean, var]
        }
        BATCH_NORM_BACKWARD => {
            let (x, gamma, mean, var, dy) = (input(), input(), input(), input(), input());
            let batch_stats = matches!(desc.scalars[1], ScalarIr::Bool(true));
            let activated = activation(&desc.scalars[2]).map(|a| (a, input()));
            let eps = float(desc, 0);
            let (dx, dgamma, dbeta) =
                B::batch_norm_fused_backward(x, gamma, mean, var, eps, dy, batch_stats, activated);
            vec![dx, dgamma, dbeta]
        }
        GROUP_NORM_BACKWARD => {
            let (x, gamma, mean, var, dy) = (input(), input(), input(), input(), input());
            let (groups, eps) = (uint(desc, 0), float(desc, 1));
            let (dx, dgamma, dbeta) =
                B::group_norm_fused_backward(x, gamma, mean, var, groups, eps, dy);
            vec![dx, dgamma, dbeta]
        }
        id => unreachable!("{id} is not one of bn-layers' ops"),
    };
    for (output, tensor) in desc.outputs.iter().zip(results) {
        handles.register_float_tensor::<B>(&output.id, tensor);
    }
}

impl<B: FusionBackend + NormKernels + NormGradKernels> NormKernels for Fusion<B> {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let channels = x.shape()[1];
        let outputs = [spec(&x), vector(&x, channels), vector(&x, channels)];
        let scalars = vec![ScalarIr::Float(epsilon), activation_code(activation)];
        let [y, mean, var] =
            register::<B, 3>(BATCH_NORM_TRAIN, vec![x, gamma, beta], outputs, scalars);
        (y, mean, var)
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
        let outputs = [spec(&x)];
        let scalars = vec![ScalarIr::Float(epsilon), activation_code(activation)];
        let inputs = vec![x, gamma, beta, mean, var];
        let [y] = register::<B, 1>(BATCH_NORM_EVAL, inputs, outputs, scalars);
        y
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let rows = x.shape()[0] * groups;
        let outputs = [spec(&x), vector(&x, rows), vector(&x, rows)];
        let scalars = vec![ScalarIr::UInt(groups as u64), ScalarIr::Float(epsilon)];
        let [y, mean, var] = register::<B, 3>(GROUP_NORM, vec![x, gamma, beta], outputs, scalars);
        (y, mean, var)
    }
}

impl<B: FusionBackend + NormKernels + NormGradKernels> NormGradKernels for Fusion<B> {
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
        let outputs = [spec(&x), spec(&gamma), spec(&gamma)];
        let (activation, y) = activated.unzip();
        let scalars = vec![
            ScalarIr::Float(epsilon),
            ScalarIr::Bool(batch_stats),
            activation_code(activation),
        ];
        let inputs = [x, gamma, mean, var, dy].into_iter().chain(y).collect();
        let [dx, dgamma, dbeta] = register::<B, 3>(BATCH_NORM_BACKWARD, inputs, outputs, scalars);
        (dx, dgamma, dbeta)
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
        let outputs = [spec(&x), spec(&gamma), spec(&gamma)];
        let scalars = vec![ScalarIr::UInt(groups as u64), ScalarIr::Float(epsilon)];
        let inputs = vec![x, gamma, mean, var, dy];
        let [dx, dgamma, dbeta] = register::<B, 3>(GROUP_NORM_BACKWARD, inputs, outputs, scalars);
        (dx, dgamma, dbeta)
    }
}
