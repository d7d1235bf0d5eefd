//! 2D convolution with a dedicated backward pass, as a burn backend extension.
//!
//! # Why
//!
//! In burn 0.22 no CPU backend has a conv backward kernel: autodiff calls the generic fallback,
//! which gets the input gradient from a transposed conv and the weight gradient from a conv of the
//! batch-and-channel-swapped input with the swapped output gradient as its kernel (a matrix
//! product only `kh * kw` columns wide, after two layout copies). On `flex` this op computes the
//! output and both gradients from im2col blocks, one plain matrix product each
//! (`visionnet_kernels::conv`), except that 3x3 stride-1 convs of at least 16 channels take
//! Winograd's F(4x4, 3x3) for the output and both gradients (`visionnet_kernels::conv::winograd`);
//! it skips the input gradient when the input needs none (the first layer).
//!
//! This module is the trait and the module-level [`conv2d`] / [`forward`]; `flex` holds the
//! flex implementation (tensors to slices, the choice of kernel), `autodiff` the backward step.
//!
//! # What it computes
//!
//! Exactly burn's `conv2d(x, weight, None, options)`, for `groups == 1`; [`conv2d`] falls back to
//! burn's op for grouped convs, and backends other than `flex` run their own conv ops.
//!
//! # Shapes
//! - `x`: `[batch, c_in, h, w]`; `weight`: `[c_out, c_in, kh, kw]`
//! - output: `[batch, c_out, ho, wo]` as burn's conv2d

use burn::backend::Dispatch;
use burn::backend::backend_extension;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

mod autodiff;
mod flex;

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

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl ConvOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl ConvOps for burn::backend::LibTorch {}

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
