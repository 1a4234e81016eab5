//! [`NormKernels`] on Burn's autodiff backend: each op is one node whose backward is the
//! inner backend's [`NormGradKernels`]. The node keeps the input (checkpointed), `gamma`, and
//! the statistics the forward computed (a few values per channel or row), and the output when
//! an activation follows the normalization (its derivative comes from the output).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend};

use super::{NormGradKernels, NormKernels};
use crate::Activation;

/// What a node keeps for its backward: the checkpointed `x` and `gamma`, the statistics, the
/// op's scalar parameters, and the output where the backward needs it.
#[derive(Clone, Debug)]
struct SavedState<B: Backend, P> {
    x: NodeId,
    gamma: NodeId,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    params: P,
    output: Option<FloatTensor<B>>,
}

/// A node's parents, `[dy, x, gamma, mean, var]` (its output gradient, the checkpointed
/// inputs and the saved statistics), its scalar parameters and the saved output.
type Unpacked<B, P> = (
    [Option<NodeId>; 3],
    [FloatTensor<B>; 5],
    P,
    Option<FloatTensor<B>>,
);

/// Takes what a node's backward starts from: its output gradient and its saved state.
fn unpack<B: Backend, P>(
    ops: Ops<SavedState<B, P>, 3>,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) -> Unpacked<B, P> {
    let dy = grads.consume::<B>(&ops.node);
    let state = ops.state;
    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(state.x);
    let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(state.gamma);
    let parents = ops.parents.map(|parent| parent.map(|node| node.id));
    let tensors = [dy, x, gamma, state.mean, state.var];
    (parents, tensors, state.params, state.output)
}

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

/// Backward of `batch_norm_train_fused` (batch statistics) and `batch_norm_eval_fused`
/// (constants), with the activation that followed the normalization, if any.
#[derive(Debug)]
struct BatchNormBackward {
    batch_stats: bool,
    activation: Option<Activation>,
}

impl<B: Backend + NormGradKernels> Backward<B, 3> for BatchNormBackward {
    type State = SavedState<B, f64>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (parents, [dy, x, gamma, mean, var], epsilon, output) =
            unpack::<B, _>(ops, grads, checkpointer);
        let activated = self.activation.map(|activation| {
            let y = output.expect("the node keeps its output when an activation follows");
            (activation, y)
        });
        let grads_out = B::batch_norm_fused_backward(
            x,
            gamma,
            mean,
            var,
            epsilon,
            dy,
            self.batch_stats,
            activated,
        );
        register::<B>(parents, grads, grads_out);
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
        let (parents, [dy, x, gamma, mean, var], (groups, epsilon), _) =
            unpack::<B, _>(ops, grads, checkpointer);
        let grads_out = B::group_norm_fused_backward(x, gamma, mean, var, groups, epsilon, dy);
        register::<B>(parents, grads, grads_out);
    }
}

/// Runs `forward` on the inner backend and records it as one node whose backward is
/// `backward`, keeping `x` and `gamma` (checkpointed), the statistics, `params` and, when
/// `keep_output`, the output. Returns the output and the statistics, which carry no gradient.
fn record<B, C, K, P>(
    backward: K,
    [x, gamma, beta]: [FloatTensor<Autodiff<B, C>>; 3],
    params: P,
    keep_output: bool,
    forward: impl FnOnce(
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>),
) -> (FloatTensor<Autodiff<B, C>>, FloatTensor<B>, FloatTensor<B>)
where
    B: Backend,
    C: CheckpointStrategy,
    K: Backward<B, 3, State = SavedState<B, P>>,
    P: Clone + Send + core::fmt::Debug + 'static,
{
    let prepared = backward
        .prepare::<C>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful();
    match prepared {
        OpsKind::Tracked(mut prep) => {
            let saved = (prep.checkpoint(&x), prep.checkpoint(&gamma));
            let (y, mean, var) = forward(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            );
            let state = SavedState {
                x: saved.0,
                gamma: saved.1,
                mean: mean.clone(),
                var: var.clone(),
                params,
                output: keep_output.then(|| y.clone()),
            };
            (prep.finish(state, y), mean, var)
        }
        OpsKind::UnTracked(prep) => {
            let (y, mean, var) = forward(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            );
            (prep.finish(y), mean, var)
        }
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
        activation: Option<Activation>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let forward =
            move |x, gamma, beta| B::batch_norm_train_fused(x, gamma, beta, epsilon, activation);
        let backward = BatchNormBackward {
            batch_stats: true,
            activation,
        };
        let inputs = [x, gamma, beta];
        let keep = activation.is_some();
        let (y, mean, var) = record::<B, C, _, _>(backward, inputs, epsilon, keep, forward);
        (y, Self::from_inner(mean), Self::from_inner(var))
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
        // The running statistics are constants: the node keeps them, nothing flows to them.
        let (mean, var) = (mean.into_primitive(), var.into_primitive());
        let forward = move |x, gamma, beta| {
            let (m, v) = (mean.clone(), var.clone());
            let y = B::batch_norm_eval_fused(x, gamma, beta, m, v, epsilon, activation);
            (y, mean, var)
        };
        let backward = BatchNormBackward {
            batch_stats: false,
            activation,
        };
        let keep = activation.is_some();
        record::<B, C, _, _>(backward, [x, gamma, beta], epsilon, keep, forward).0
    }

    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let forward = move |x, gamma, beta| B::group_norm_fused(x, gamma, beta, groups, epsilon);
        let params = (groups, epsilon);
        let (y, mean, var) =
            record::<B, C, _, _>(GroupNormBackward, [x, gamma, beta], params, false, forward);
        (y, Self::from_inner(mean), Self::from_inner(var))
    }
}
