//! Memory-lean softmax attention over the pixels of a feature map, the kernel behind attention
//! architectures 1 and 2, as a burn backend extension: the trait and the public calls (this
//! file), the portable path ([`tiled`]), the flex implementation (`flex`: tensors to slices for
//! `visionnet_kernels::attention`) and the autodiff step (`autodiff`).
//!
//! # What it computes
//!
//! For each of `g` independent groups (arch 1: one per image and channel; arch 2: one per image
//! and head), with `n` tokens (the `h * w` pixels) laid out channel-major as the feature map is:
//!
//! ```text
//! q: [g, dk, n]   k: [g, dk, n]   v: [g, dv, n]
//! A = softmax_rows(scale * q^T k)          // [g, n, n], row i = query pixel i
//! y = v A^T                                // [g, dv, n]: y[:, i] = sum_j A[i, j] v[:, j]
//! ```
//!
//! # Why a custom operation
//!
//! Written with tensor operations, autodiff keeps the `n x n` attention matrix (and the
//! exponentials before normalisation) of every group for the backward pass: at 32x32 pixels
//! that is `g * 1024 * 1024` floats, 8 GB per copy for arch 1 at batch 64. Here the forward pass
//! keeps only `y` and the log-sum-exp of each row (`lse`, `[g, n]`); the backward pass recomputes
//! the attention weights a block of rows at a time (as FlashAttention does), so what is kept grows
//! linearly with `n` and the scratch is bounded by a fixed block size.
//!
//! Backward, with `P = A`, `dy` the output gradient and `D_i = sum_c dy[c, i] y[c, i]`:
//!
//! ```text
//! dP = dy^T v           dS = P * (dP - D)      (row-wise D)
//! dq = scale * k dS^T   dk = scale * q dS      dv = dy P
//! ```
//!
//! # Implementations
//!
//! - [`AttentionOps`] is a burn backend extension. Its default bodies ([`tiled`]) compose the
//!   backend's own tensor operations on blocks of query rows, so the lean path runs on every
//!   backend (flex, wgpu, cuda, tch).
//! - On `flex` (CPU) the operation runs hand-written kernels (`visionnet_kernels::attention`,
//!   AVX-512, AVX2 or portable, picked at run time): SIMD exponentials, rayon
//!   over groups, and for `dk = dv = 1` (arch 1, where `q_i k_j` is an outer product) a kernel
//!   that needs no matrix products and gets each row's maximum in closed form.
//! - The autodiff backend (`autodiff`) calls the inner backend's forward and backward.
//! - [`attention_naive`] is the plain reference: tensor operations, autodiff'd by burn, the full
//!   attention matrix kept. Tests check the lean paths against it.

mod autodiff;
mod flex;
pub mod tiled;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Which implementation computes the lean operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The fastest lean kernel of the backend (the CPU kernels on flex, [`tiled`] elsewhere).
    Native,
    /// The portable path of backend tensor operations, on every backend: [`tiled`] for pixel
    /// attention, [`generic_forward`](super::channel_attention::generic_forward) and its
    /// backward for arch 3.
    Tiled,
}

impl Kernel {
    pub(crate) fn tiled(self) -> bool {
        self == Kernel::Tiled
    }
}

/// Pixel attention as a burn backend extension: forward, backward, and the differentiable
/// operation. Shapes as in the [module documentation](self); `tiled` forces the portable path.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait AttentionOps: burn::backend::Backend {
    /// `(y, lse)`: the output `[g, dv, n]` and each query row's log-sum-exp of the scaled
    /// scores `[g, n]`.
    fn pixel_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let _ = tiled;
        tiled::forward::<Self>(q, k, v, scale)
    }

    /// `(dq, dk, dv)` from the forward inputs, its outputs `y` and `lse`, and the output
    /// gradient `dy` `[g, dv, n]`.
    #[allow(clippy::too_many_arguments)]
    fn pixel_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        y: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = tiled;
        tiled::backward::<Self>(q, k, v, y, lse, dy, scale)
    }

    /// The differentiable operation: `y` `[g, dv, n]`. Backends without autodiff just run the
    /// forward pass; the autodiff backend records the lean backward.
    fn pixel_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> FloatTensor<Self> {
        Self::pixel_attention_forward(q, k, v, scale, tiled).0
    }
}

// GPUs and LibTorch use the portable tiled path (the trait's default bodies).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl AttentionOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl AttentionOps for burn::backend::LibTorch {}

fn check_shapes(q: &Tensor<3>, k: &Tensor<3>, v: &Tensor<3>) {
    let [g, dk, n] = q.dims();
    assert_eq!(
        k.dims(),
        [g, dk, n],
        "pixel attention: k must have q's shape [g, dk, n]"
    );
    let [gv, _, nv] = v.dims();
    assert_eq!(
        [gv, nv],
        [g, n],
        "pixel attention: v must be [g, dv, n] with q's g and n"
    );
}

/// Lean, differentiable pixel attention: `y = v softmax(scale * q^T k)^T`.
///
/// # Shapes
/// - `q`, `k`: `[g, dk, n]`; `v`: `[g, dv, n]`
/// - output: `[g, dv, n]`
pub fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    scale: f32,
    kernel: Kernel,
) -> Tensor<3> {
    check_shapes(&q, &k, &v);
    Tensor::from_dispatch(<Dispatch as AttentionOps>::pixel_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        kernel.tiled(),
    ))
}

/// The lean forward pass alone: `(y [g, dv, n], lse [g, n])`.
pub fn attention_forward(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    scale: f32,
    kernel: Kernel,
) -> (Tensor<3>, Tensor<2>) {
    check_shapes(&q, &k, &v);
    let (y, lse) = <Dispatch as AttentionOps>::pixel_attention_forward(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        kernel.tiled(),
    );
    (Tensor::from_dispatch(y), Tensor::from_dispatch(lse))
}

/// The lean backward pass alone: `(dq, dk, dv)` for the output gradient `dy` `[g, dv, n]`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    y: Tensor<3>,
    lse: Tensor<2>,
    dy: Tensor<3>,
    scale: f32,
    kernel: Kernel,
) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
    check_shapes(&q, &k, &v);
    let (dq, dk, dv) = <Dispatch as AttentionOps>::pixel_attention_backward(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        y.into_dispatch(),
        lse.into_dispatch(),
        dy.into_dispatch(),
        scale,
        kernel.tiled(),
    );
    (
        Tensor::from_dispatch(dq),
        Tensor::from_dispatch(dk),
        Tensor::from_dispatch(dv),
    )
}

/// The naive reference: the same function as [`attention`] from tensor operations; autodiff
/// keeps the full `[g, n, n]` attention matrix for the backward pass.
pub fn attention_naive(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, scale: f32) -> Tensor<3> {
    check_shapes(&q, &k, &v);
    let scores = q.swap_dims(1, 2).matmul(k) * scale; // [g, n, n]
    let weights = softmax(scores, 2); // [g, n, n], rows sum to 1
    v.matmul(weights.swap_dims(1, 2)) // [g, dv, n]
}
