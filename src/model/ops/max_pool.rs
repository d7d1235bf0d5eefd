//! 2D max-pooling with its own CPU kernels, as a burn backend extension.
//!
//! # Why
//!
//! burn 0.22's `flex` backend pools through its generic 3D kernel with `i64` indices: the
//! forward pass writes an index per output value (twice the output's bytes) that autodiff keeps
//! until the backward pass, which scatters through them. A profile of the plain CNN's training
//! step put pooling at about a tenth of the time. Here the forward pass writes only the output,
//! and the backward pass finds each window's maximum again in the input (which the graph keeps
//! anyway: the ReLU before the pool holds it), so nothing extra is kept; the common 2x2, stride-2
//! window has a loop of its own. The kernels are `visionnet_kernels::max_pool`; this module is
//! the trait, the flex implementation (tensors to slices), the autodiff step and [`forward`].
//!
//! # What it computes
//!
//! Exactly burn's (and PyTorch's) `max_pool2d` with symmetric padding (padded positions never win)
//! and `ceil_mode` off: `y[b, c, oy, ox] = max over the window`, and the gradient of each window
//! goes to its first maximum in row-major order (a NaN counts as the maximum, as in PyTorch).
//! [`forward`] takes burn's own op for asymmetric or `Same` padding and `ceil_mode`.
//!
//! # Shapes
//! - `x`: `[batch, channels, h, w]`
//! - output: `[batch, channels, (h + 2 pad - dilation (k - 1) - 1) / stride + 1, ...]`

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, IntDType, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use visionnet_kernels::max_pool as kernels;

pub use visionnet_kernels::max_pool::PoolWindow;

use super::flex::{all_f32, contiguous, dims, tensor, values};

/// Max-pooling whose kernels a backend may implement itself; the default bodies are burn's
/// `max_pool2d` and its backward through indices.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait MaxPoolOps: burn::backend::Backend {
    /// The differentiable max-pool.
    fn max_pool2d_lean(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        burns_forward::<Self>(x, window)
    }

    /// The gradient of the input `x` for the output gradient `dy`.
    fn max_pool2d_input_grad(
        x: FloatTensor<Self>,
        window: PoolWindow,
        dy: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burns_input_grad::<Self>(x, window, dy)
    }
}

/// burn's own max-pool: the trait's default, and flex's path for what its kernels do not take.
fn burns_forward<B: burn::backend::Backend>(x: FloatTensor<B>, w: PoolWindow) -> FloatTensor<B> {
    B::max_pool2d(x, w.kernel, w.stride, w.padding, w.dilation, false)
}

/// burn's own max-pool backward, through the indices of a second forward pass.
pub(super) fn burns_input_grad<B: burn::backend::Backend>(
    x: FloatTensor<B>,
    w: PoolWindow,
    dy: FloatTensor<B>,
) -> FloatTensor<B> {
    let (k, s, p, d) = (w.kernel, w.stride, w.padding, w.dilation);
    let indices = B::max_pool2d_with_indices(x.clone(), k, s, p, d, false, IntDType::I64).indices;
    B::max_pool2d_with_indices_backward(x, k, s, p, d, false, dy, indices).x_grad
}

/// Whether the CPU kernels take this pool: an `f32` 4D input, padding at most half the kernel.
fn cpu_takes(tensors: &[&FlexTensor], window: &PoolWindow) -> bool {
    tensors.iter().all(|t| t.shape().num_dims() == 4) && all_f32(tensors) && kernels::takes(window)
}

impl MaxPoolOps for burn::backend::Flex {
    fn max_pool2d_lean(x: FlexTensor, window: PoolWindow) -> FlexTensor {
        if !cpu_takes(&[&x], &window) {
            return burns_forward::<Self>(x, window);
        }
        let dims @ [b, c, h, w] = dims::<4>(&x);
        let [ho, wo] = window.output(h, w);
        let x = contiguous(x);
        tensor(
            kernels::forward(values(&x), dims, &window),
            vec![b, c, ho, wo],
        )
    }

    fn max_pool2d_input_grad(x: FlexTensor, window: PoolWindow, dy: FlexTensor) -> FlexTensor {
        if !cpu_takes(&[&x, &dy], &window) {
            return burns_input_grad::<Self>(x, window, dy);
        }
        let dims = dims::<4>(&x);
        let (x, dy) = (contiguous(x), contiguous(dy));
        tensor(
            kernels::input_grad(values(&x), values(&dy), dims, &window),
            dims.to_vec(),
        )
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl MaxPoolOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl MaxPoolOps for burn::backend::LibTorch {}

/// The backward step of [`MaxPoolOps::max_pool2d_lean`]: keeps the input, not indices.
#[derive(Debug)]
struct MaxPoolBackward;

impl<B: MaxPoolOps> Backward<B, 1> for MaxPoolBackward {
    type State = (FloatTensor<B>, PoolWindow);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, window) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::max_pool2d_input_grad(x, window, dy));
        }
    }
}

impl<B: MaxPoolOps, C: CheckpointStrategy> MaxPoolOps for Autodiff<B, C> {
    fn max_pool2d_lean(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let y = B::max_pool2d_lean(x.clone(), window);
                prep.finish((x, window), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_lean(x.into_primitive(), window)),
        }
    }
}

/// Max-pooling of `x` with `window`, with [`MaxPoolOps`]' kernels.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, ho, wo]` (`PoolWindow::output`)
pub fn max_pool2d(x: Tensor<4>, window: PoolWindow) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as MaxPoolOps>::max_pool2d_lean(
        x.into_dispatch(),
        window,
    ))
}

/// `pool.forward(x)` through [`max_pool2d`] where the module's padding is symmetric (or none) and
/// `ceil_mode` is off; burn's own op otherwise.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, ho, wo]`
pub fn forward(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    match window(pool) {
        Some(window) => max_pool2d(x, window),
        None => pool.forward(x),
    }
}

/// The module's window where [`max_pool2d`] takes it: symmetric padding (or none) and
/// `ceil_mode` off; `None` otherwise (burn's own op then runs).
pub fn window(pool: &MaxPool2d) -> Option<PoolWindow> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return None,
    };
    (!pool.ceil_mode).then_some(PoolWindow {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding,
        dilation: pool.dilation,
    })
}
