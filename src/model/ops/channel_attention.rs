//! Attention architecture 3 as one operation (feature maps as tokens, the output concatenated
//! to the input), forward and backward, as a burn backend extension: the trait with its portable
//! default ([`generic_forward`] / [`generic_backward`], the backend's own tensor operations), the
//! flex implementation (tensors to slices for `visionnet_kernels::channel_attention`), the
//! autodiff step, and the module-level [`channel_attention`].
//!
//! # What it computes
//!
//! Per image, `X` `[C, N]`, `W_q`, `W_k` `[N, D]`, `H` heads of `d = D / H`:
//!
//! ```text
//! q = X W_q,  k = X W_k                       // [C, D]
//! A = (1/H) sum_h softmax_rows(q_h k_h^T / sqrt(d))   // [C, C]
//! out = [X; A X]                              // [2C, N]
//! ```
//!
//! # Why one operation
//!
//! Composed of tensor operations (`ChannelAttention::attend` and a concatenation), autodiff
//! records about a dozen nodes per block: the projections through `Linear`, the heads' reshapes
//! and transposes (each made contiguous for the matrix products, forward and backward), the
//! softmax's max / exp / sum / div passes and the concatenation's copy, and the backward pass
//! runs as many again. Here the forward pass is two matrix products over the batch, one small
//! product per image and head, the SIMD softmax and one product into the output's second half;
//! the backward pass reuses the saved `q`, `k` and attention weights, with every transpose a
//! strided view. The saved weights are `[B, H, C, C]`: at most 256 x 256 per image and head.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, Scalar, Shape, Slice, TensorMetadata, backend_extension,
};
use burn::prelude::*;
use visionnet_kernels::channel_attention as kernels;

use super::Kernel;
use super::flex::{all_f32, contiguous, dims, tensor, values};

/// Arch 3's attention as a backend extension. Shapes as in the [module documentation](self):
/// `x` `[B, C, N]`, `wq`, `wk` `[N, D]`; `tiled` forces the portable path.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait ChannelAttentionOps: burn::backend::Backend {
    /// `(out [B, 2C, N], q [B, C, D], k [B, C, D], probs [B, H, C, C])`: the output and what
    /// the backward pass needs (each head's attention weights, rows summing to 1).
    fn channel_attention_forward(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let _ = tiled;
        generic_forward::<Self>(x, wq, wk, heads)
    }

    /// `(dx [B, C, N], dwq [N, D], dwk [N, D])` from the forward's inputs and saved tensors and
    /// the output gradient `dout` `[B, 2C, N]`.
    #[allow(clippy::too_many_arguments)]
    fn channel_attention_backward(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        dout: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = tiled;
        generic_backward::<Self>(x, wq, wk, q, k, probs, dout, heads)
    }

    /// The differentiable operation: `out` `[B, 2C, N]`. Backends without autodiff just run
    /// the forward pass; the autodiff backend records the backward.
    fn channel_attention(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> FloatTensor<Self> {
        Self::channel_attention_forward(x, wq, wk, heads, tiled).0
    }
}

fn dims3<B: Backend>(t: &FloatTensor<B>) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

/// `[B, C, D]` as the heads' `[B, H, C, d]`.
fn split_heads<B: Backend>(
    t: FloatTensor<B>,
    [b, c, d]: [usize; 3],
    heads: usize,
) -> FloatTensor<B> {
    let t = B::float_reshape(t, Shape::new([b, c, heads, d / heads])); // [B, C, H, d]
    B::float_swap_dims(t, 1, 2) // [B, H, C, d]
}

/// The heads' `[B, H, C, d]` as `[B, C, D]`.
fn merge_heads<B: Backend>(t: FloatTensor<B>, [b, c, d]: [usize; 3]) -> FloatTensor<B> {
    B::float_reshape(B::float_swap_dims(t, 1, 2), Shape::new([b, c, d]))
}

/// `A`, the heads' mean of `probs` `[B, H, C, C]`: `[B, C, C]`.
fn mean_of_heads<B: Backend>(probs: FloatTensor<B>, [b, c]: [usize; 2]) -> FloatTensor<B> {
    B::float_reshape(B::float_mean_dim(probs, 1), Shape::new([b, c, c]))
}

/// The forward pass from the backend's own tensor operations: the trait's default (every
/// backend but flex) and flex's path for other float types.
pub fn generic_forward<B: Backend>(
    x: FloatTensor<B>,
    wq: FloatTensor<B>,
    wk: FloatTensor<B>,
    heads: usize,
) -> (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
) {
    let [b, c, n] = dims3::<B>(&x);
    let d = wq.shape()[1];
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    let project = |w: FloatTensor<B>| {
        B::float_matmul(x.clone(), B::float_reshape(w, Shape::new([1, n, d]))) // [B, C, D]
    };
    let (q, k) = (project(wq), project(wk));
    let q_h = split_heads::<B>(q.clone(), [b, c, d], heads); // [B, H, C, d]
    let k_h = split_heads::<B>(k.clone(), [b, c, d], heads); // [B, H, C, d]
    let s = B::float_matmul(q_h, B::float_swap_dims(k_h, 2, 3)); // [B, H, C, C]
    let s = B::float_mul_scalar(s, Scalar::from(scale));
    let m = B::float_max_dim(s.clone(), 3); // [B, H, C, 1]
    let e = B::float_exp(B::float_sub(s, m)); // [B, H, C, C]
    let probs = B::float_div(e.clone(), B::float_sum_dim(e, 3)); // rows sum to 1
    let a = mean_of_heads::<B>(probs.clone(), [b, c]); // [B, C, C]
    let y = B::float_matmul(a, x.clone()); // [B, C, N]
    (B::float_cat(vec![x, y], 1), q, k, probs) // out [B, 2C, N]
}

/// The backward pass from the backend's own tensor operations (see [`generic_forward`]).
#[allow(clippy::too_many_arguments)]
pub fn generic_backward<B: Backend>(
    x: FloatTensor<B>,
    wq: FloatTensor<B>,
    wk: FloatTensor<B>,
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    probs: FloatTensor<B>,
    dout: FloatTensor<B>,
    heads: usize,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [b, c, n] = dims3::<B>(&x);
    let d = wq.shape()[1];
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    let half = |range: std::ops::Range<usize>| {
        B::float_slice(
            dout.clone(),
            &[Slice::from(..), Slice::from(range), Slice::from(..)],
        )
    };
    let (g_x, g_y) = (half(0..c), half(c..2 * c)); // [B, C, N] each
    let a = mean_of_heads::<B>(probs.clone(), [b, c]); // [B, C, C]
    let da = B::float_matmul(g_y.clone(), B::float_swap_dims(x.clone(), 1, 2)); // [B, C, C]
    let dx = B::float_add(g_x, B::float_matmul(B::float_swap_dims(a, 1, 2), g_y)); // [B, C, N]
    // Each head's share of dA, then the softmax's backward with the score scale folded in.
    let dp = B::float_reshape(
        B::float_div_scalar(da, Scalar::from(heads as f32)),
        Shape::new([b, 1, c, c]),
    ); // [B, 1, C, C]
    let p_dp = B::float_mul(probs.clone(), dp); // [B, H, C, C]
    let dot = B::float_sum_dim(p_dp.clone(), 3); // [B, H, C, 1]
    let ds = B::float_sub(p_dp, B::float_mul(probs, dot)); // [B, H, C, C]
    let ds = B::float_mul_scalar(ds, Scalar::from(scale));
    let q_h = split_heads::<B>(q, [b, c, d], heads); // [B, H, C, d]
    let k_h = split_heads::<B>(k, [b, c, d], heads); // [B, H, C, d]
    let dq = merge_heads::<B>(B::float_matmul(ds.clone(), k_h), [b, c, d]); // [B, C, D]
    let dk = merge_heads::<B>(
        B::float_matmul(B::float_swap_dims(ds, 2, 3), q_h),
        [b, c, d],
    ); // [B, C, D]
    let transposed = |w: FloatTensor<B>| {
        B::float_reshape(B::float_swap_dims(w, 0, 1), Shape::new([1, d, n])) // [1, D, N]
    };
    let dx = B::float_add(dx, B::float_matmul(dq.clone(), transposed(wq)));
    let dx = B::float_add(dx, B::float_matmul(dk.clone(), transposed(wk)));
    let x_t = B::float_swap_dims(B::float_reshape(x, Shape::new([b * c, n])), 0, 1); // [N, B C]
    let weight_grad = |g: FloatTensor<B>| {
        B::float_matmul(x_t.clone(), B::float_reshape(g, Shape::new([b * c, d])))
    };
    (dx, weight_grad(dq), weight_grad(dk)) // [B, C, N], [N, D], [N, D]
}

impl ChannelAttentionOps for burn::backend::Flex {
    fn channel_attention_forward(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        if tiled || !all_f32(&[&x, &wq, &wk]) {
            return generic_forward::<Self>(x, wq, wk, heads);
        }
        let shape = kernel_shape(dims::<3>(&x), dims::<2>(&wq), heads);
        let (x, wq, wk) = (contiguous(x), contiguous(wq), contiguous(wk));
        let f = kernels::forward(values(&x), values(&wq), values(&wk), shape);
        let kernels::Shape {
            batch: b,
            channels: c,
            tokens: n,
            dim: d,
            ..
        } = shape;
        (
            tensor(f.out, vec![b, 2 * c, n]),
            tensor(f.q, vec![b, c, d]),
            tensor(f.k, vec![b, c, d]),
            tensor(f.probs, vec![b, heads, c, c]),
        )
    }

    fn channel_attention_backward(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        dout: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if tiled || !all_f32(&[&x, &wq, &wk, &q, &k, &probs, &dout]) {
            return generic_backward::<Self>(x, wq, wk, q, k, probs, dout, heads);
        }
        let shape = kernel_shape(dims::<3>(&x), dims::<2>(&wq), heads);
        let [x, wq, wk, q, k, probs, dout] = [x, wq, wk, q, k, probs, dout].map(contiguous);
        let (dx, dwq, dwk) = kernels::backward(
            values(&x),
            values(&wq),
            values(&wk),
            values(&q),
            values(&k),
            values(&probs),
            values(&dout),
            shape,
        );
        let (s, [n, d]) = (x.shape().to_vec(), dims::<2>(&wq));
        (
            tensor(dx, s),
            tensor(dwq, vec![n, d]),
            tensor(dwk, vec![n, d]),
        )
    }
}

fn kernel_shape(
    [batch, channels, tokens]: [usize; 3],
    [_, dim]: [usize; 2],
    heads: usize,
) -> kernels::Shape {
    kernels::Shape {
        batch,
        channels,
        tokens,
        dim,
        heads,
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl ChannelAttentionOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl ChannelAttentionOps for burn::backend::LibTorch {}

/// The backward step of [`ChannelAttentionOps::channel_attention`].
#[derive(Debug)]
struct ChannelAttentionBackward;

/// What the backward step needs: `x`, `wq`, `wk`, the saved `q`, `k`, `probs`, the heads and
/// the path.
type State<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    usize,
    bool,
);

impl<B: ChannelAttentionOps> Backward<B, 3> for ChannelAttentionBackward {
    type State = State<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_wq, node_wk] = ops.parents;
        let dout = grads.consume::<B>(&ops.node);
        let (x, wq, wk, q, k, probs, heads, tiled) = ops.state;
        let (dx, dwq, dwk) =
            B::channel_attention_backward(x, wq, wk, q, k, probs, dout, heads, tiled);
        for (node, grad) in [(node_x, dx), (node_wq, dwq), (node_wk, dwk)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: ChannelAttentionOps, C: CheckpointStrategy> ChannelAttentionOps for Autodiff<B, C> {
    fn channel_attention(
        x: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        wk: FloatTensor<Self>,
        heads: usize,
        tiled: bool,
    ) -> FloatTensor<Self> {
        match ChannelAttentionBackward
            .prepare::<C>([x.node(), wq.node(), wk.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, wq, wk) = (x.into_primitive(), wq.into_primitive(), wk.into_primitive());
                let (out, q, k, probs) =
                    B::channel_attention_forward(x.clone(), wq.clone(), wk.clone(), heads, tiled);
                prep.finish((x, wq, wk, q, k, probs, heads, tiled), out)
            }
            OpsKind::UnTracked(prep) => {
                let (out, ..) = B::channel_attention_forward(
                    x.into_primitive(),
                    wq.into_primitive(),
                    wk.into_primitive(),
                    heads,
                    tiled,
                );
                prep.finish(out)
            }
        }
    }
}

/// Arch 3's `[X; A X]`, differentiable in `x`, `wq` and `wk`, on the path `kernel` says.
///
/// # Shapes
/// - `x`: `[B, C, N]`; `wq`, `wk`: `[N, D]` (`D` a multiple of `heads`)
/// - output: `[B, 2C, N]`
///
/// # Panics
/// If the shapes disagree or `heads` does not divide `D`.
pub fn channel_attention(
    x: Tensor<3>,
    wq: Tensor<2>,
    wk: Tensor<2>,
    heads: usize,
    kernel: Kernel,
) -> Tensor<3> {
    let [_, _, n] = x.dims();
    let [nq, d] = wq.dims();
    assert!(
        nq == n && wk.dims() == [n, d],
        "channel attention: W_q {:?} and W_k {:?} must both be [N, D] with the input's N = {n}",
        wq.dims(),
        wk.dims()
    );
    assert!(
        heads > 0 && d % heads == 0,
        "channel attention: {heads} heads do not divide the width {d}"
    );
    Tensor::from_dispatch(<Dispatch as ChannelAttentionOps>::channel_attention(
        x.into_dispatch(),
        wq.into_dispatch(),
        wk.into_dispatch(),
        heads,
        kernel.tiled(),
    ))
}
