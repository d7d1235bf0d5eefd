//! Adam and SGD with each parameter's update as one operation, as a burn backend extension.
//!
//! # Why
//!
//! burn's `Adam` composes each parameter's update from a dozen whole-tensor operations (the
//! two moments, the bias corrections, the square root, the division, the learning rate, the
//! subtraction), and its `Sgd` with Nesterov momentum and weight decay from nine; each is a
//! pass over the parameter that writes a new tensor. On the CPU the kernels of
//! `visionnet_kernels::optimizer` do each update in one pass, in place, with exactly burn's
//! operations in burn's order: the weights and optimizer state are bit-for-bit burn's
//! (`tests/fused_optim.rs` holds them to burn's optimizers over several steps), and the state
//! records are burn's own layout, so checkpoints written by either load into the other.
//!
//! This module is the extension trait ([`FusedOptimOps`]: the kernels on `flex`, burn's
//! compositions on every other backend) and the two [`Optimizer`]s that call it,
//! [`FusedAdam`] and [`FusedSgd`]; `train::optimizer::build` makes them what `--optimizer
//! adam` and `--optimizer sgd` train with.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, TensorMetadata, backend_extension};
use burn::optim::{
    AdamState, AdaptiveMomentumState, LearningRate, Optimizer, RecordState, StateSink, StateSource,
    join_path,
};
use burn::prelude::*;
use burn::tensor::Scalar;
use visionnet_kernels::optimizer as kernels;

pub use visionnet_kernels::optimizer::{AdamStep, SgdMomentum, SgdStep};

use crate::model::ops::flex::all_f32;

/// The optimizers' updates, which a backend may implement itself; the default bodies are
/// burn's compositions of tensor operations. Not differentiable: they run on the parameters'
/// inner tensors.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait FusedOptimOps: burn::backend::Backend {
    /// `(w, m, v)` after one Adam step of the weights `w` with gradient `g` and moments `m`,
    /// `v` (ignored at the first step, `step.time == 1`).
    fn adam_update(
        w: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_adam::<Self>(w, g, m, v, step)
    }

    /// `(w, u)` after one SGD step with momentum of the weights `w` with gradient `g` and
    /// velocity `u` (ignored at the first step, `step.first`). `step.momentum` is set.
    fn sgd_momentum_update(
        w: FloatTensor<Self>,
        g: FloatTensor<Self>,
        u: FloatTensor<Self>,
        step: SgdStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        burns_sgd_momentum::<Self>(w, g, u, step)
    }

    /// `w` after one plain SGD step (no momentum) with gradient `g`.
    fn sgd_update(w: FloatTensor<Self>, g: FloatTensor<Self>, step: SgdStep) -> FloatTensor<Self> {
        burns_sgd::<Self>(w, g, step)
    }
}

fn scalar(x: f32) -> Scalar {
    Scalar::Float(x as f64)
}

/// burn's `WeightDecay`: `w λ + g`.
fn burns_decayed<B: burn::backend::Backend>(
    w: &FloatTensor<B>,
    g: FloatTensor<B>,
    penalty: Option<f32>,
) -> FloatTensor<B> {
    match penalty {
        Some(penalty) => B::float_add(B::float_mul_scalar(w.clone(), scalar(penalty)), g),
        None => g,
    }
}

/// burn's `Adam` (`AdaptiveMomentum` without AMSGrad, `WeightDecay`) on the backend's tensor
/// operations: the trait's default, and flex's path for tensors that are not `f32`.
fn burns_adam<B: burn::backend::Backend>(
    w: FloatTensor<B>,
    g: FloatTensor<B>,
    m: FloatTensor<B>,
    v: FloatTensor<B>,
    s: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let g = burns_decayed::<B>(&w, g, s.weight_decay);
    let g1 = B::float_mul_scalar(g.clone(), scalar(1.0 - s.beta_1));
    let g2 = B::float_mul_scalar(B::float_mul(g.clone(), g), scalar(1.0 - s.beta_2));
    let (m, v) = if s.time == 1 {
        (g1, g2)
    } else {
        (
            B::float_add(B::float_mul_scalar(m, scalar(s.beta_1)), g1),
            B::float_add(B::float_mul_scalar(v, scalar(s.beta_2)), g2),
        )
    };
    let (bias_correction2_sqrt, combined) = s.corrections();
    let denominator = B::float_add_scalar(
        B::float_sqrt(v.clone()),
        scalar(s.epsilon * bias_correction2_sqrt),
    );
    let update = B::float_div(
        B::float_mul_scalar(m.clone(), scalar(combined)),
        denominator,
    );
    let w = B::float_sub(w, B::float_mul_scalar(update, scalar(s.lr)));
    (w, m, v)
}

/// burn's `Sgd` without momentum (`WeightDecay` only) on the backend's tensor operations.
fn burns_sgd<B: burn::backend::Backend>(
    w: FloatTensor<B>,
    g: FloatTensor<B>,
    s: SgdStep,
) -> FloatTensor<B> {
    let g = burns_decayed::<B>(&w, g, s.weight_decay);
    B::float_sub(w, B::float_mul_scalar(g, scalar(s.lr)))
}

/// burn's `Sgd` with `Momentum` and `WeightDecay` on the backend's tensor operations.
fn burns_sgd_momentum<B: burn::backend::Backend>(
    w: FloatTensor<B>,
    g: FloatTensor<B>,
    u: FloatTensor<B>,
    s: SgdStep,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let momentum = s.momentum.expect("a momentum step");
    let g = burns_decayed::<B>(&w, g, s.weight_decay);
    let u = if s.first {
        g.clone()
    } else {
        B::float_add(
            B::float_mul_scalar(g.clone(), scalar(momentum.gradient_factor)),
            B::float_mul_scalar(u, scalar(momentum.momentum)),
        )
    };
    let d = if momentum.nesterov {
        B::float_add(B::float_mul_scalar(u.clone(), scalar(momentum.momentum)), g)
    } else {
        u.clone()
    };
    (B::float_sub(w, B::float_mul_scalar(d, scalar(s.lr))), u)
}

/// `t` as a tensor whose whole storage is its values in order, to be written in place (a
/// shared buffer is copied when first written: flex's copy-on-write `storage_mut`).
fn owned_contiguous(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    let exact = t.layout().contiguous_offsets() == Some((0, n))
        && t.bytes().len() == n * std::mem::size_of::<f32>();
    if exact { t } else { t.to_contiguous() }
}

/// Whether the kernels take these tensors: all `f32`, all of `w`'s size.
fn kernels_take(w: &FlexTensor, others: &[&FlexTensor]) -> bool {
    let n = w.shape().num_elements();
    others.iter().all(|t| t.shape().num_elements() == n) && all_f32(&[w]) && all_f32(others)
}

impl FusedOptimOps for burn::backend::Flex {
    fn adam_update(
        w: FlexTensor,
        g: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        step: AdamStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !kernels_take(&w, &[&g, &m, &v]) {
            return burns_adam::<Self>(w, g, m, v, step);
        }
        let [mut w, g, mut m, mut v] = [w, g, m, v].map(owned_contiguous);
        kernels::adam(
            w.storage_mut::<f32>(),
            g.storage::<f32>(),
            m.storage_mut::<f32>(),
            v.storage_mut::<f32>(),
            &step,
        );
        (w, m, v)
    }

    fn sgd_momentum_update(
        w: FlexTensor,
        g: FlexTensor,
        u: FlexTensor,
        step: SgdStep,
    ) -> (FlexTensor, FlexTensor) {
        if !kernels_take(&w, &[&g, &u]) || step.momentum.is_none() {
            return burns_sgd_momentum::<Self>(w, g, u, step);
        }
        let [mut w, g, mut u] = [w, g, u].map(owned_contiguous);
        let velocity = Some(u.storage_mut::<f32>());
        kernels::sgd(w.storage_mut::<f32>(), g.storage::<f32>(), velocity, &step);
        (w, u)
    }

    fn sgd_update(w: FlexTensor, g: FlexTensor, step: SgdStep) -> FlexTensor {
        if !kernels_take(&w, &[&g]) || step.momentum.is_some() {
            return burns_sgd::<Self>(w, g, step);
        }
        let [mut w, g] = [w, g].map(owned_contiguous);
        kernels::sgd(w.storage_mut::<f32>(), g.storage::<f32>(), None, &step);
        w
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl FusedOptimOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl FusedOptimOps for burn::backend::LibTorch {}
impl<B: FusedOptimOps, C: CheckpointStrategy> FusedOptimOps for Autodiff<B, C> {}

/// Adam (Kingma and Ba) as burn's `AdamConfig` builds it without AMSGrad, its update through
/// [`FusedOptimOps`]. The per-parameter state is burn's [`AdamState`].
#[derive(Clone, Debug)]
pub struct FusedAdam {
    /// Decay of the first moment (burn's and PyTorch's default 0.9).
    pub beta_1: f32,
    /// Decay of the second moment (0.999).
    pub beta_2: f32,
    /// Added to the second moment's square root.
    pub epsilon: f32,
    /// L2 penalty added to the gradient (`g + λ w`), if any.
    pub weight_decay: Option<f32>,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1,
                s.momentum.moment_2,
            ),
            // ignored by the first step, which writes them whole
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let step = AdamStep {
            lr: lr as f32,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time: i32::try_from(time).unwrap_or(i32::MAX),
        };
        let (w, m, v) = <Dispatch as FusedOptimOps>::adam_update(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            m.into_dispatch(),
            v.into_dispatch(),
            step,
        );
        let momentum =
            AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v));
        (Tensor::from_dispatch(w), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// SGD, with momentum and weight decay as burn's `SgdConfig` builds them, its update through
/// [`FusedOptimOps`].
#[derive(Clone, Debug)]
pub struct FusedSgd {
    /// L2 penalty added to the gradient (`g + λ w`), if any.
    pub weight_decay: Option<f32>,
    /// Momentum, if any (its `gradient_factor` is `1 - dampening`).
    pub momentum: Option<SgdMomentum>,
}

/// The state of [`FusedSgd`] for one parameter: burn's `SgdState`, whose `MomentumState` keeps
/// the velocity private. Its record is burn's, leaf for leaf (`{param}.momentum.velocity`, no
/// leaf without momentum), as burn's `RecordState` derive names them (the derive itself only
/// works inside burn), so checkpoints of either optimizer load into the other.
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    /// The velocity `u`, if there is momentum.
    pub velocity: Option<Tensor<D>>,
}

/// The record's names: burn's `SgdState.momentum` and `MomentumState.velocity`.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            let path = join_path(prefix, MOMENTUM);
            out.push_tensor(&path, VELOCITY, velocity.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = join_path(prefix, MOMENTUM);
        let velocity = if src.has_under(&path) {
            Some(Tensor::from_data(src.take_tensor(&path, VELOCITY)?, device))
        } else {
            None
        };
        Some(Self { velocity })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let velocity = state.and_then(|s| s.velocity);
        let step = SgdStep {
            lr: lr as f32,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            first: velocity.is_none(),
        };
        if self.momentum.is_none() {
            let w = <Dispatch as FusedOptimOps>::sgd_update(
                tensor.into_dispatch(),
                grad.into_dispatch(),
                step,
            );
            return (Tensor::from_dispatch(w), Some(SgdState { velocity: None }));
        }
        // ignored by the first step, which writes it whole
        let u = velocity.unwrap_or_else(|| grad.zeros_like());
        let (w, u) = <Dispatch as FusedOptimOps>::sgd_momentum_update(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            u.into_dispatch(),
            step,
        );
        let velocity = Some(Tensor::from_dispatch(u));
        (Tensor::from_dispatch(w), Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.velocity = state.velocity.map(|u| u.to_device(device));
        state
    }
}
