//! The lean backward pass of pixel attention on burn's autodiff backend.
//!
//! The forward pass runs on the inner backend and the graph keeps `q`, `k`, `v` (which the
//! surrounding layers keep anyway), the output `y` and the row log-sum-exp `lse`: linear in the
//! number of tokens. The backward step calls the inner backend's
//! [`pixel_attention_backward`](super::AttentionOps::pixel_attention_backward), which recomputes
//! the attention weights block by block.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::AttentionOps;

/// The backward step of [`AttentionOps::pixel_attention`].
#[derive(Debug)]
struct PixelAttentionBackward;

/// What the backward step needs: `q`, `k`, `v`, `y`, `lse`, scale, tiled.
type State<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f32,
    bool,
);

impl<B: AttentionOps> Backward<B, 3> for PixelAttentionBackward {
    type State = State<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_q, node_k, node_v] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (q, k, v, y, lse, scale, tiled) = ops.state;
        let (dq, dk, dv) = B::pixel_attention_backward(q, k, v, y, lse, dy, scale, tiled);
        if let Some(node) = node_q {
            grads.register::<B>(node.id, dq);
        }
        if let Some(node) = node_k {
            grads.register::<B>(node.id, dk);
        }
        if let Some(node) = node_v {
            grads.register::<B>(node.id, dv);
        }
    }
}

impl<B: AttentionOps, C: CheckpointStrategy> AttentionOps for Autodiff<B, C> {
    fn pixel_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> FloatTensor<Self> {
        match PixelAttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let (y, lse) =
                    B::pixel_attention_forward(q.clone(), k.clone(), v.clone(), scale, tiled);
                prep.finish((q, k, v, y.clone(), lse, scale, tiled), y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, _) = B::pixel_attention_forward(
                    q.into_primitive(),
                    k.into_primitive(),
                    v.into_primitive(),
                    scale,
                    tiled,
                );
                prep.finish(y)
            }
        }
    }
}
