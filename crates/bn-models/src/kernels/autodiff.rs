//! [`ModelKernels`] on Burn's autodiff backend: each op is one node whose backward is the
//! inner backend's [`ModelGradKernels`]; the node keeps its inputs (checkpointed).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend};

use super::{ModelGradKernels, ModelKernels};

/// Backward of `avg_pool_2x2`.
#[derive(Debug)]
struct AvgPoolBackward;

impl<B: Backend + ModelGradKernels> Backward<B, 1> for AvgPoolBackward {
    type State = NodeId;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state);
        if let [Some(parent)] = ops.parents {
            grads.register::<B>(parent.id, B::avg_pool_2x2_backward(x, dy));
        }
    }
}

/// Backward of `conv2d_valid`: the checkpointed input, weight and bias.
#[derive(Debug)]
struct ConvBackward;

impl<B: Backend + ModelGradKernels> Backward<B, 3> for ConvBackward {
    type State = (NodeId, NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, weight, bias) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
        let bias = checkpointer.retrieve_node_output::<FloatTensor<B>>(bias);
        let [x_node, weight_node, bias_node] = ops.parents;
        let (dx, dweight, dbias) = B::conv2d_valid_backward(x, weight, bias, dy, x_node.is_some());
        for (node, grad) in [
            (x_node, dx),
            (weight_node, Some(dweight)),
            (bias_node, Some(dbias)),
        ] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend + ModelKernels + ModelGradKernels, C: CheckpointStrategy> ModelKernels
    for Autodiff<B, C>
{
    fn avg_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match AvgPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::avg_pool_2x2(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::avg_pool_2x2(x.into_primitive())),
        }
    }

    fn conv2d_valid(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prepared = ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        match prepared {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&weight),
                    prep.checkpoint(&bias),
                );
                let y = B::conv2d_valid(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_valid(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }
}
