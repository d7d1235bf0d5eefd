//! 2D convolution with a dedicated backward pass, as a burn backend extension.
//!
//! # Why
//!
//! In burn 0.22 no CPU backend has a conv backward kernel: autodiff calls the generic fallback,
//! which gets the input gradient from a transposed conv and the weight gradient from a conv of the
//! batch-and-channel-swapped input with the swapped output gradient as its kernel (a matrix
//! product only `kh * kw` columns wide, after two layout copies). On `flex` this op computes the
//! output and both gradients from im2col blocks, one plain matrix product each
//! ([`conv_cpu`](super::conv_cpu)), except that 3x3 stride-1 convs of at least 16 channels
//! take Winograd's F(4x4, 3x3) for the output and both gradients
//! ([`winograd`](super::winograd)); it skips the input gradient when the input needs none (the
//! first layer).
//!
//! # What it computes
//!
//! Exactly burn's `conv2d(x, weight, None, options)`, for `groups == 1`; [`conv2d`] falls back to
//! burn's op for grouped convs, and backends other than `flex` run their own conv ops.
//!
//! # Shapes
//! - `x`: `[batch, c_in, h, w]`; `weight`: `[c_out, c_in, kh, kw]`
//! - output: `[batch, c_out, ho, wo]` as burn's conv2d

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{DType, Dispatch, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::conv_cpu::{self, ConvShape};
use super::cpu::{contiguous, tensor, values};
use super::winograd;

/// Conv2d whose backward pass a backend may implement itself. The default bodies are burn's own
/// conv ops, so every backend runs it.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait ConvOps: burn::backend::Backend {
    /// The differentiable conv (no bias).
    fn conv2d_lean(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of the conv's input `x` for the output gradient `dy`.
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, dy, options)
    }

    /// The gradient of the conv's `weight` for the output gradient `dy`.
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, dy, options)
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// Whether the CPU kernels take this conv: `f32` tensors, no groups.
fn cpu_takes(tensors: &[&FlexTensor], options: &ConvOptions<2>) -> bool {
    options.groups == 1 && tensors.iter().all(|t| t.dtype() == DType::F32)
}

impl ConvOps for burn::backend::Flex {
    fn conv2d_lean(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if !cpu_takes(&[&x, &weight], &options) {
            return Self::conv2d(x, weight, None, options);
        }
        let shape = ConvShape::new(dims4(&x), dims4(&weight), &options);
        let (x, weight) = (contiguous(x), contiguous(weight));
        let y = if winograd::applies(&shape) {
            winograd::forward(values(&x), values(&weight), &shape)
        } else {
            conv_cpu::forward(values(&x), values(&weight), &shape)
        };
        tensor(y, vec![shape.batch, shape.c_out, shape.ho, shape.wo])
    }

    fn conv2d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        dy: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !cpu_takes(&[&x, &weight, &dy], &options) {
            return Self::conv2d_x_backward(x, weight, dy, options);
        }
        let shape = ConvShape::new(dims4(&x), dims4(&weight), &options);
        let (weight, dy) = (contiguous(weight), contiguous(dy));
        let dx = if winograd::applies(&shape) {
            winograd::input_grad(values(&weight), values(&dy), &shape)
        } else {
            conv_cpu::input_grad(values(&weight), values(&dy), &shape)
        };
        tensor(dx, dims4(&x).to_vec())
    }

    fn conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        dy: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !cpu_takes(&[&x, &weight, &dy], &options) {
            return Self::conv2d_weight_backward(x, weight, dy, options);
        }
        let shape = ConvShape::new(dims4(&x), dims4(&weight), &options);
        let (x, dy) = (contiguous(x), contiguous(dy));
        let dw = if winograd::applies(&shape) {
            winograd::weight_grad(values(&x), values(&dy), &shape)
        } else {
            conv_cpu::weight_grad(values(&x), values(&dy), &shape)
        };
        tensor(dw, dims4(&weight).to_vec())
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl ConvOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl ConvOps for burn::backend::LibTorch {}

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

/// 2D convolution, `bias` added after; the same function as burn's `conv2d`, with
/// [`ConvOps`]' backward pass where the conv is not grouped.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`; `weight`: `[c_out, c_in / groups, kh, kw]`; `bias`: `[c_out]`
/// - output: `[batch, c_out, ho, wo]`
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if options.groups != 1 {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let [_, c_in, _, _] = x.dims();
    let [c_out, c_in_w, _, _] = weight.dims();
    assert_eq!(
        c_in, c_in_w,
        "conv2d: input has {c_in} channels, the kernel expects {c_in_w}"
    );
    let y: Tensor<4> = Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_lean(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(bias) => y + bias.reshape([1, c_out, 1, 1]),
        None => y,
    }
}

/// `conv.forward(x)` through [`conv2d`]: the module's weights, bias, stride, dilation, groups
/// and explicit (or no) padding, with [`ConvOps`]' backward pass. `Same` padding, which burn
/// computes per input size, takes the module's own forward.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, ho, wo]`
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}
