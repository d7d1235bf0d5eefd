//! The backward step of [`ConvOps::conv2d_lean`] on burn's autodiff backend: the graph keeps
//! `x` and the weight; the step calls the inner backend's input and weight gradients.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;

use super::ConvOps;

/// The backward step of [`ConvOps::conv2d_lean`].
#[derive(Debug)]
struct Conv2dBackward;

impl<B: ConvOps> Backward<B, 2> for Conv2dBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, weight, options) = ops.state;
        // The input gradient only where the input needs one (not for the network's input).
        if let Some(node) = node_x {
            grads.register::<B>(
                node.id,
                B::conv2d_input_grad(x.clone(), weight.clone(), dy.clone(), options.clone()),
            );
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, B::conv2d_weight_grad(x, weight, dy, options));
        }
    }
}

impl<B: ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn conv2d_lean(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match Conv2dBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let y = B::conv2d_lean(x.clone(), weight.clone(), options.clone());
                prep.finish((x, weight, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_lean(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}
