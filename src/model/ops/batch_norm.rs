//! Training-mode BatchNorm with its own CPU kernels, as a burn backend extension: the trait,
//! the flex implementation (tensors to slices for `visionnet_kernels::batch_norm`, which holds
//! the passes), the autodiff step, and the module-level [`forward`] / [`forward_relu`] /
//! [`forward_relu_pool`].
//!
//! # Why
//!
//! burn 0.22's `flex` backend trains BatchNorm with the generic default of `batch_norm_train`
//! and its backward: per call two layout copies (`swap_dims(0, 1)` made contiguous, to reduce over
//! batch and pixels) and about ten whole-tensor element-wise passes, as many again backward. Here
//! the forward pass is two reads and one write per value (statistics, then the output), the
//! backward pass two reads and one write, with no layout change.
//!
//! # What it computes
//!
//! With `x` `[b, c, ...]`, per channel over the batch and the pixels (`N` values):
//!
//! ```text
//! mean = sum(x) / N        var = sum((x - mean)^2) / N      (biased, as the running update uses)
//! y    = gamma (x - mean) / sqrt(var + eps) + beta
//! dbeta = sum(dy)          dgamma = sum(dy xhat)            (xhat = (x - mean) / sqrt(var + eps))
//! dx   = gamma / sqrt(var + eps) (dy - dbeta / N - xhat dgamma / N)
//! ```
//!
//! [`forward`] is `BatchNorm::forward` with this op in training mode: the same running-statistics
//! update. In inference it normalises with the running statistics in one pass (burn's
//! `batch_norm` composes five whole-tensor passes, the ReLU a sixth: a sixth of the plain CNN's
//! inference step on a 2-core Zen 5).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Dispatch, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use visionnet_kernels::batch_norm as kernels;

use super::flex::{all_f32, contiguous, tensor, values};
use super::max_pool::PoolWindow;

/// Training-mode BatchNorm whose kernels a backend may implement itself; the default bodies are
/// burn's `batch_norm_train` and its backward.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait BatchNormOps: burn::backend::Backend {
    /// `(y, mean, variance)`: the normalised output (differentiable in `x`, `gamma`, `beta`) and
    /// the batch statistics `[c]` (not differentiable).
    /// With `relu`, the output is `max(y, 0)` (a NaN stays NaN, as burn's ReLU leaves it).
    fn batch_norm_train_lean(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_train::<Self>(x, gamma, beta, epsilon, relu)
    }

    /// Inference-mode BatchNorm with the given statistics (the running ones), then with `relu`
    /// `max(y, 0)`: burn's `batch_norm` (and ReLU) by default.
    fn batch_norm_infer_lean(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        let y = Self::batch_norm(x, gamma, beta, mean, variance, epsilon);
        if relu { Self::relu(y) } else { y }
    }

    /// Inference-mode BatchNorm -> ReLU -> 2x2, stride-2 max-pool of `x` `[b, c, h, w]`:
    /// [`BatchNormOps::batch_norm_infer_lean`] then burn's `max_pool2d` by default.
    fn batch_norm_infer_relu_pool_2x2(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        burns_infer_relu_pool_2x2::<Self>(x, gamma, beta, mean, variance, epsilon)
    }

    /// Training-mode BatchNorm -> ReLU -> 2x2, stride-2 max-pool of `x` `[b, c, h, w]` as one
    /// op: `(y, mean, variance)`, `y` the pooled output `[b, c, h / 2, w / 2]` (differentiable
    /// in `x`, `gamma`, `beta`), the batch statistics `[c]` (not differentiable). By default
    /// [`BatchNormOps::batch_norm_train_lean`] with the ReLU, then burn's `max_pool2d`.
    fn batch_norm_relu_pool_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_train_relu_pool::<Self>(x, gamma, beta, epsilon)
    }

    /// `(dx, dgamma, dbeta)` of [`BatchNormOps::batch_norm_relu_pool_train`] for the pooled
    /// output's gradient `dy`, from `x` and the batch statistics: the ReLU's output is rebuilt
    /// from them (the op keeps no activation of its own). By default with burn's ops.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_pool_train_grads(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_relu_pool_grads::<Self>(x, gamma, beta, mean, variance, epsilon, dy)
    }

    /// `(dx, dgamma, dbeta)` for the output gradient `dy`.
    fn batch_norm_train_grads(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_grads::<Self>(x, gamma, mean, variance, epsilon, dy)
    }

    /// [`BatchNormOps::batch_norm_train_grads`] where the op applied the ReLU: `output` is its
    /// output, and the gradient passes where that is above 0 (or NaN).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_train_grads(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        dy: FloatTensor<Self>,
        output: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        Self::batch_norm_train_grads(
            x,
            gamma,
            mean,
            variance,
            epsilon,
            Self::relu_backward(output, dy),
        )
    }
}

/// [`BatchNormOps::batch_norm_infer_lean`] with the ReLU, then burn's 2x2, stride-2
/// `max_pool2d`: the trait's default, and flex's path for what its kernels do not take.
fn burns_infer_relu_pool_2x2<B: BatchNormOps>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let y = B::batch_norm_infer_lean(x, gamma, beta, mean, variance, epsilon, true);
    B::max_pool2d(y, [2, 2], [2, 2], [0, 0], [1, 1], false)
}

/// [`BatchNormOps::batch_norm_train_lean`] with the ReLU, then burn's 2x2, stride-2
/// `max_pool2d`: the trait's default, and flex's path for what its kernels do not take.
fn burns_train_relu_pool<B: BatchNormOps>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (y, mean, variance) = B::batch_norm_train_lean(x, gamma, beta, epsilon, true);
    let w = PoolWindow::PLAIN_2X2;
    let y = B::max_pool2d(y, w.kernel, w.stride, w.padding, w.dilation, false);
    (y, mean, variance)
}

/// The gradients of [`burns_train_relu_pool`]: the ReLU's output rebuilt with the batch
/// statistics, burn's pool backward through it, then
/// [`BatchNormOps::batch_norm_relu_train_grads`].
fn burns_relu_pool_grads<B: BatchNormOps>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let y = B::batch_norm_infer_lean(
        x.clone(),
        gamma.clone(),
        beta,
        mean.clone(),
        variance.clone(),
        epsilon,
        true,
    );
    let dy = super::max_pool::burns_input_grad::<B>(y.clone(), PoolWindow::PLAIN_2X2, dy);
    B::batch_norm_relu_train_grads(x, gamma, mean, variance, epsilon, dy, y)
}

/// burn's `batch_norm_train` as `(y, mean, variance)`, then burn's ReLU on `y` with `relu`: the
/// trait's default, and flex's path for what its kernels do not take.
fn burns_train<B: burn::backend::Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    (
        if relu { B::relu(r.output) } else { r.output },
        r.mean,
        r.variance,
    )
}

/// burn's `batch_norm_train_backward` as `(dx, dgamma, dbeta)`.
fn burns_grads<B: burn::backend::Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, dy);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

/// `[b, c, pixels]` of a `[b, c, ...]` tensor.
fn planes(t: &FlexTensor) -> [usize; 3] {
    let s = t.shape();
    let pixels = (2..s.num_dims()).map(|d| s[d]).product();
    [s[0], s[1], pixels]
}

/// Whether `x` is `[b, c, h, w]` with a 2x2 window's room: what the fused pool kernels take.
fn pools(x: &FlexTensor) -> bool {
    x.shape().num_dims() == 4 && x.shape()[2] >= 2 && x.shape()[3] >= 2
}

fn cpu_takes(tensors: &[&FlexTensor]) -> bool {
    all_f32(tensors) && tensors[0].shape().num_dims() >= 2
}

impl BatchNormOps for burn::backend::Flex {
    fn batch_norm_train_lean(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !cpu_takes(&[&x, &gamma, &beta]) {
            return burns_train::<Self>(x, gamma, beta, epsilon, relu);
        }
        let dims = planes(&x);
        let shape = x.shape().to_vec();
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (y, mean, var) = kernels::train_forward(
            values(&x),
            values(&gamma),
            values(&beta),
            dims,
            epsilon,
            relu,
        );
        let c = vec![dims[1]];
        (tensor(y, shape), tensor(mean, c.clone()), tensor(var, c))
    }

    fn batch_norm_infer_lean(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        if !cpu_takes(&[&x, &gamma, &beta, &mean, &variance]) {
            let y = Self::batch_norm(x, gamma, beta, mean, variance, epsilon);
            return if relu { Self::relu(y) } else { y };
        }
        let dims = planes(&x);
        let shape = x.shape().to_vec();
        let [x, gamma, beta, mean, variance] = [x, gamma, beta, mean, variance].map(contiguous);
        let stats = [&gamma, &beta, &mean, &variance].map(values);
        tensor(
            kernels::infer_forward(values(&x), stats, dims, epsilon, relu),
            shape,
        )
    }

    fn batch_norm_infer_relu_pool_2x2(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        if !(cpu_takes(&[&x, &gamma, &beta, &mean, &variance]) && pools(&x)) {
            return burns_infer_relu_pool_2x2::<Self>(x, gamma, beta, mean, variance, epsilon);
        }
        let dims @ [b, c, h, w] = super::flex::dims::<4>(&x);
        let [x, gamma, beta, mean, variance] = [x, gamma, beta, mean, variance].map(contiguous);
        let stats = [&gamma, &beta, &mean, &variance].map(values);
        tensor(
            kernels::infer_relu_pool_2x2(values(&x), stats, dims, epsilon),
            vec![b, c, h / 2, w / 2],
        )
    }

    fn batch_norm_relu_pool_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !(cpu_takes(&[&x, &gamma, &beta]) && pools(&x)) {
            return burns_train_relu_pool::<Self>(x, gamma, beta, epsilon);
        }
        let dims @ [b, c, h, w] = super::flex::dims::<4>(&x);
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (y, mean, var) =
            kernels::train_relu_pool_2x2(values(&x), values(&gamma), values(&beta), dims, epsilon);
        (
            tensor(y, vec![b, c, h / 2, w / 2]),
            tensor(mean, vec![c]),
            tensor(var, vec![c]),
        )
    }

    fn batch_norm_relu_pool_train_grads(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        dy: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !(cpu_takes(&[&x, &gamma, &beta, &mean, &variance, &dy]) && pools(&x)) {
            return burns_relu_pool_grads::<Self>(x, gamma, beta, mean, variance, epsilon, dy);
        }
        let dims = super::flex::dims::<4>(&x);
        let [x, gamma, beta, mean, variance, dy] =
            [x, gamma, beta, mean, variance, dy].map(contiguous);
        let stats = [&gamma, &beta, &mean, &variance].map(values);
        let (dx, dgamma, dbeta) =
            kernels::train_relu_pool_2x2_grads(values(&x), stats, values(&dy), dims, epsilon);
        let c = vec![dims[1]];
        (
            tensor(dx, dims.to_vec()),
            tensor(dgamma, c.clone()),
            tensor(dbeta, c),
        )
    }

    fn batch_norm_train_grads(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        dy: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !cpu_takes(&[&x, &gamma, &mean, &variance, &dy]) {
            return burns_grads::<Self>(x, gamma, mean, variance, epsilon, dy);
        }
        let dims = planes(&x);
        let shape = x.shape().to_vec();
        let (x, gamma, mean, variance, dy) = (
            contiguous(x),
            contiguous(gamma),
            contiguous(mean),
            contiguous(variance),
            contiguous(dy),
        );
        let (dx, dgamma, dbeta) = kernels::train_grads(
            values(&x),
            values(&gamma),
            values(&mean),
            values(&variance),
            values(&dy),
            dims,
            epsilon,
        );
        let c = vec![dims[1]];
        (
            tensor(dx, shape),
            tensor(dgamma, c.clone()),
            tensor(dbeta, c),
        )
    }

    fn batch_norm_relu_train_grads(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        dy: FlexTensor,
        output: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !cpu_takes(&[&dy, &output]) {
            let dy = Self::relu_backward(output, dy);
            return Self::batch_norm_train_grads(x, gamma, mean, variance, epsilon, dy);
        }
        let (output, dy) = (contiguous(output), contiguous(dy));
        let masked = kernels::relu_grad(values(&output), values(&dy));
        let dy = tensor(masked, dy.shape().to_vec());
        Self::batch_norm_train_grads(x, gamma, mean, variance, epsilon, dy)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl BatchNormOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl BatchNormOps for burn::backend::LibTorch {}

/// The backward step of [`BatchNormOps::batch_norm_train_lean`].
#[derive(Debug)]
struct BatchNormBackward;

impl<B: BatchNormOps> Backward<B, 3> for BatchNormBackward {
    /// `x`, `gamma`, the batch mean and variance, epsilon, and the output where the op applied
    /// the ReLU.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
        Option<FloatTensor<B>>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, variance, epsilon, relu_output) = ops.state;
        let (dx, dgamma, dbeta) = match relu_output {
            Some(output) => {
                B::batch_norm_relu_train_grads(x, gamma, mean, variance, epsilon, dy, output)
            }
            None => B::batch_norm_train_grads(x, gamma, mean, variance, epsilon, dy),
        };
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

/// The backward step of [`BatchNormOps::batch_norm_relu_pool_train`]: keeps `x`, the
/// parameters and the statistics, no activation.
#[derive(Debug)]
struct BatchNormReluPoolBackward;

impl<B: BatchNormOps> Backward<B, 3> for BatchNormReluPoolBackward {
    /// `x`, `gamma`, `beta`, the batch mean and variance, epsilon.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, variance, epsilon) = ops.state;
        let (dx, dgamma, dbeta) =
            B::batch_norm_relu_pool_train_grads(x, gamma, beta, mean, variance, epsilon, dy);
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
    fn batch_norm_relu_pool_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let parents = [x.node(), gamma.node(), beta.node()];
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        let (y, mean, variance) =
            B::batch_norm_relu_pool_train(x.clone(), gamma.clone(), beta.clone(), epsilon);
        let y = match BatchNormReluPoolBackward
            .prepare::<C>(parents)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x, gamma, beta, mean.clone(), variance.clone(), epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, Self::from_inner(mean), Self::from_inner(variance))
    }

    fn batch_norm_train_lean(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gamma, beta) = (
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                );
                let (y, mean, variance) =
                    B::batch_norm_train_lean(x.clone(), gamma.clone(), beta, epsilon, relu);
                let relu_output = relu.then(|| y.clone());
                let y = prep.finish(
                    (
                        x,
                        gamma,
                        mean.clone(),
                        variance.clone(),
                        epsilon,
                        relu_output,
                    ),
                    y,
                );
                (y, Self::from_inner(mean), Self::from_inner(variance))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, variance) = B::batch_norm_train_lean(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(variance),
                )
            }
        }
    }
}

/// `norm.forward(x)`, with [`BatchNormOps`]' kernels in training mode (an autodiff device and
/// the layer not frozen, as burn decides): the batch statistics normalise `x` and update the
/// running statistics with the module's momentum, exactly as burn's `BatchNorm` does.
///
/// # Shapes
/// - `x`: `[batch, channels, ...]`; output: the same
pub fn forward<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    train_or_infer(norm, x, false)
}

/// `relu(norm.forward(x))`, the ReLU fused into the BatchNorm op in training mode (one pass
/// over the activations fewer each way, and no ReLU node): the conv units' BatchNorm -> ReLU.
///
/// # Shapes
/// - `x`: `[batch, channels, ...]`; output: the same
pub fn forward_relu<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    train_or_infer(norm, x, true)
}

/// `pool(relu(norm.forward(x)))` for a 2x2, stride-2 pool: the conv units' BatchNorm -> ReLU ->
/// pool as one op. In training (as [`forward`] decides it) the op keeps only its input and the
/// statistics for the backward pass, not the full-size ReLU output, and updates the running
/// statistics as burn's `BatchNorm` does; in inference off autodiff it is one pass that never
/// writes the full-size activation. Otherwise (inference on an autodiff device), and for any
/// other pool, [`forward_relu`] then [`max_pool::forward`](super::max_pool::forward).
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, h / 2, w / 2]` (the pool's)
pub fn forward_relu_pool(norm: &BatchNorm, pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let plain_2x2 = super::max_pool::window(pool).is_some_and(|w| w.is_2x2());
    let training = device.is_autodiff() && norm.training.is_enabled();
    if !plain_2x2 || (device.is_autodiff() && !training) {
        return super::max_pool::forward(pool, forward_relu(norm, x));
    }
    check_channels(norm, &x.dims());
    if training {
        let (y, mean, variance) = <Dispatch as BatchNormOps>::batch_norm_relu_pool_train(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.epsilon,
        );
        update_running_stats(norm, mean, variance);
        return Tensor::from_dispatch(y);
    }
    Tensor::from_dispatch(<Dispatch as BatchNormOps>::batch_norm_infer_relu_pool_2x2(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.running_mean.value().to_device(&device).into_dispatch(),
        norm.running_var.value().to_device(&device).into_dispatch(),
        norm.epsilon,
    ))
}

/// # Panics
/// If the input's channels (`dims[1]`) are not the module's.
fn check_channels(norm: &BatchNorm, dims: &[usize]) {
    let [features] = norm.gamma.shape().dims();
    assert_eq!(
        dims[1], features,
        "batch norm over {features} channels: input of shape {dims:?}"
    );
}

fn train_or_infer<const D: usize>(norm: &BatchNorm, x: Tensor<D>, relu: bool) -> Tensor<D> {
    check_channels(norm, &x.dims());
    let device = x.device();
    if !(device.is_autodiff() && norm.training.is_enabled()) {
        // inference: burn's module path (`BatchNorm::forward_inference`) as one op
        let y = <Dispatch as BatchNormOps>::batch_norm_infer_lean(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.running_mean.value().to_device(&device).into_dispatch(),
            norm.running_var.value().to_device(&device).into_dispatch(),
            norm.epsilon,
            relu,
        );
        return Tensor::from_dispatch(y);
    }
    let (y, mean, variance) = <Dispatch as BatchNormOps>::batch_norm_train_lean(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
        relu,
    );
    update_running_stats(norm, mean, variance);
    Tensor::from_dispatch(y)
}

/// burn's `BatchNorm` running-statistics update with a training op's batch `mean` and
/// `variance` `[c]`: `running <- (1 - momentum) running + momentum batch`.
fn update_running_stats(
    norm: &BatchNorm,
    mean: FloatTensor<Dispatch>,
    variance: FloatTensor<Dispatch>,
) {
    let (mean, variance) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(variance),
    );
    let device = mean.device();
    let momentum = norm.momentum;
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - momentum)
        .add(mean.detach().mul_scalar(momentum));
    let running_var = running_var
        .mul_scalar(1.0 - momentum)
        .add(variance.detach().mul_scalar(momentum));
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
}
