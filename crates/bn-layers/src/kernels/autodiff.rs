//! [`NormKernels`] on Burn's autodiff backend: each op is one node whose backward is the
//! inner backend's [`NormGradKernels`]. The node keeps the input (checkpointed), `gamma`, and
//! the statistics the forward computed (a few values per channel or row).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend};

use super::{NormGradKernels, NormKernels};

/// What a node keeps for its backward: the checkpointed `x` and `gamma`, the statistics, and
/// the op's scalar parameters.
type SavedState<B, P> = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, P);

/// Hands `(dx, dgamma, dbeta)` to the parents that track gradients.
fn register<B: Backend>(
    parents: [Option<NodeId>; 3],
    grads: &mut Gradients,
    (dx, dgamma, dbeta): (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>),
) {
    let [x, gamma, beta] = parents;
    for (node, grad) in [(x, dx), (gamma, dgamma), (beta, dbeta)] {
        if let Some(node) = node {
            grads.register::<B>(node, grad);
        }
    }
}

/// Backward of `batch_norm_train_fused` (batch statistics) and `batch_norm_eval_fused` (constants).
#[derive(Debug)]
struct BatchNormBackward {
    batch_stats: bool,
}

impl<B: Backend + NormGradKernels> Backward<B, 3> for BatchNormBackward {
    type State = SavedState<B, f64>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, var, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
        let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma);
        let grads_out =
            B::batch_norm_fused_backward(x, gamma, mean, var, epsilon, dy, self.batch_stats);
        register::<B>(ops.parents.map(|p| p.map(|node| node.id)), grads, grads_out);
    }
}

/// Backward of `group_norm_fused`.
#[derive(Debug)]
struct GroupNormBackward;

impl<B: Backend + NormGradKernels> Backward<B, 3> for GroupNormBackward {
    type State = SavedState<B, (usize, f64)>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, var, (groups, epsilon)) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
        let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma);
        let grads_out = B::group_norm_fused_backward(x, gamma, mean, var, groups, epsilon, dy);
        register::<B>(ops.parents.map(|p| p.map(|node| node.id)), grads, grads_out);
    }
}

impl<B: Backend + NormKernels + NormGradKernels, C: CheckpointStrategy> NormKernels
    for Autodiff<B, C>
{
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let forward =
            |x: &FloatTensor<Self>, gamma: &FloatTensor<Self>, beta: FloatTensor<Self>| {
                B::batch_norm_train_fused(
                    x.clone().into_primitive(),
                    gamma.clone().into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                )
            };
        match (BatchNormBackward { batch_stats: true })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let saved = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let (y, mean, var) = forward(&x, &gamma, beta);
                let state = (saved.0, saved.1, mean.clone(), var.clone(), epsilon);
                (
                    prep.finish(state, y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = forward(&x, &gamma, beta);
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
        }
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (mean, var) = (mean.into_primitive(), var.into_primitive());
        match (BatchNormBackward { batch_stats: false })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let saved = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let y = B::batch_norm_eval_fused(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    mean.clone(),
                    var.clone(),
                    epsilon,
                );
                prep.finish((saved.0, saved.1, mean, var, epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::batch_norm_eval_fused(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                mean,
                var,
                epsilon,
            )),
        }
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let forward =
            |x: &FloatTensor<Self>, gamma: &FloatTensor<Self>, beta: FloatTensor<Self>| {
                B::group_norm_fused(
                    x.clone().into_primitive(),
                    gamma.clone().into_primitive(),
                    beta.into_primitive(),
                    groups,
                    epsilon,
                )
            };
        match GroupNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let saved = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let (y, mean, var) = forward(&x, &gamma, beta);
                let state = (
                    saved.0,
                    saved.1,
                    mean.clone(),
                    var.clone(),
                    (groups, epsilon),
                );
                (
                    prep.finish(state, y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = forward(&x, &gamma, beta);
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
        }
    }
}
