//! Training-mode BatchNorm with its own CPU kernels, as a burn backend extension.
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
//! update, the module's own inference path otherwise.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, DType, Dispatch, TensorMetadata, backend_extension,
};
use burn::nn::BatchNorm;
use burn::prelude::*;
use rayon::prelude::*;

use super::cpu::{contiguous, tensor, values};
use super::simd::Simd;

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

fn cpu_takes(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32) && tensors[0].shape().num_dims() >= 2
}

/// Independent partial sums per reduction: 32 lanes (four AVX registers) break the chain of
/// dependent additions that made a plain `iter().sum()` (which must add in order) about a tenth
/// of a training step of the plain CNN.
const LANES: usize = 32;

/// `sum f(a[i], b[i])` over two slices of one length, in [`LANES`] partial sums.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (a_body, b_body) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_body
        .remainder()
        .iter()
        .zip(b_body.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (a, b) in a_body.zip(b_body) {
        for l in 0..LANES {
            acc[l] += f(a[l], b[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One plane of the output: `y = x a + s`, then (`relu`) `max(y, 0)` (a NaN stays NaN).
/// Compiled per SIMD path by [`Simd::run`], as are [`lane_sum`], [`input_grad`] and
/// [`relu_mask`].
#[inline(always)]
fn normalize(y: &mut [f32], x: &[f32], a: f32, s: f32, relu: bool) {
    if relu {
        for (y, &x) in y.iter_mut().zip(x) {
            let z = x * a + s;
            *y = if z <= 0.0 { 0.0 } else { z };
        }
    } else {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * a + s;
        }
    }
}

/// One plane of the input gradient: `dx = k (dy - mean_db - (x - m) s mean_dg)`.
#[inline(always)]
fn input_grad(dx: &mut [f32], x: &[f32], dy: &[f32], [k, m, s, mean_db, mean_dg]: [f32; 5]) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
        *dx = k * (g - mean_db - (x - m) * s * mean_dg);
    }
}

/// The ReLU's gradient: `dy` where the output `y` is above 0 (or NaN), else 0.
#[inline(always)]
fn relu_mask(masked: &mut [f32], y: &[f32], dy: &[f32]) {
    for ((m, &y), &g) in masked.iter_mut().zip(y).zip(dy) {
        *m = if y <= 0.0 { 0.0 } else { g };
    }
}

/// Per channel, `f(channel, plane)` summed over the batch's planes of that channel, in f64
/// (each plane's own sum in f32).
fn channel_sums(
    x: &[f32],
    [b, c, n]: [usize; 3],
    f: impl Fn(usize, &[f32]) -> f32 + Sync,
) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..b)
                .map(|i| f(ch, &x[(i * c + ch) * n..(i * c + ch + 1) * n]) as f64)
                .sum()
        })
        .collect()
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
        let [b, c, n] = dims;
        let shape = x.shape().to_vec();
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (xs, gs, bs) = (values(&x), values(&gamma), values(&beta));
        let count = (b * n) as f64;
        let simd = Simd::detect();
        let mean: Vec<f64> = channel_sums(xs, dims, |_, p| simd.run(|| lane_sum(p, p, |v, _| v)))
            .into_iter()
            .map(|s| s / count)
            .collect();
        let var: Vec<f64> = channel_sums(xs, dims, |ch, p| {
            let m = mean[ch] as f32;
            simd.run(|| lane_sum(p, p, |v, _| (v - m) * (v - m)))
        })
        .into_iter()
        .map(|s| s / count)
        .collect();
        // y = x * scale + shift per channel
        let scale: Vec<f32> = (0..c)
            .map(|ch| (gs[ch] as f64 / (var[ch] + epsilon).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| bs[ch] - (mean[ch] * scale[ch] as f64) as f32)
            .collect();
        let mut y = vec![0f32; xs.len()];
        y.par_chunks_mut(n.max(1))
            .zip(xs.par_chunks(n.max(1)))
            .enumerate()
            .for_each(|(plane, (y, x))| {
                let (a, s) = (scale[plane % c], shift[plane % c]);
                simd.run(|| normalize(y, x, a, s, relu));
            });
        let stats = |v: Vec<f64>| tensor(v.into_iter().map(|v| v as f32).collect(), vec![c]);
        (tensor(y, shape), stats(mean), stats(var))
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
        let [b, c, n] = dims;
        let shape = x.shape().to_vec();
        let (x, gamma, mean, variance, dy) = (
            contiguous(x),
            contiguous(gamma),
            contiguous(mean),
            contiguous(variance),
            contiguous(dy),
        );
        let (xs, gs, ms, vs, dys) = (
            values(&x),
            values(&gamma),
            values(&mean),
            values(&variance),
            values(&dy),
        );
        let inv_std: Vec<f32> = vs
            .iter()
            .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
            .collect();
        let plane = |i: usize, ch: usize| (i * c + ch) * n..(i * c + ch + 1) * n;
        let simd = Simd::detect();
        // dbeta = sum(dy), dgamma = sum(dy xhat) per channel
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, s) = (ms[ch], inv_std[ch]);
                (0..b).fold((0f64, 0f64), |(db, dg), i| {
                    let r = plane(i, ch);
                    let (x, dy) = (&xs[r.clone()], &dys[r]);
                    let pb = simd.run(|| lane_sum(dy, dy, |g, _| g));
                    let pg = simd.run(|| lane_sum(x, dy, |x, g| g * (x - m))) * s;
                    (db + pb as f64, dg + pg as f64)
                })
            })
            .collect();
        let count = (b * n) as f64;
        let mut dx = vec![0f32; xs.len()];
        dx.par_chunks_mut(n.max(1))
            .zip(xs.par_chunks(n.max(1)).zip(dys.par_chunks(n.max(1))))
            .enumerate()
            .for_each(|(p, (dx, (x, dy)))| {
                let ch = p % c;
                let (m, s) = (ms[ch], inv_std[ch]);
                let k = gs[ch] * s;
                let (mean_db, mean_dg) = ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
                simd.run(|| input_grad(dx, x, dy, [k, m, s, mean_db, mean_dg]));
            });
        let dgamma = sums.iter().map(|s| s.1 as f32).collect();
        let dbeta = sums.iter().map(|s| s.0 as f32).collect();
        (
            tensor(dx, shape),
            tensor(dgamma, vec![c]),
            tensor(dbeta, vec![c]),
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
        // The ReLU's gradient: dy where the output is above 0 (or NaN), else 0; one pass in
        // parallel instead of burn's mask tensor and fill.
        let (output, dy) = (contiguous(output), contiguous(dy));
        let mut masked = vec![0f32; values(&dy).len()];
        let chunk = (1 << 16).min(masked.len()).max(1);
        let simd = Simd::detect();
        masked
            .par_chunks_mut(chunk)
            .zip(
                values(&output)
                    .par_chunks(chunk)
                    .zip(values(&dy).par_chunks(chunk)),
            )
            .for_each(|(m, (y, g))| {
                simd.run(|| relu_mask(m, y, g));
            });
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

impl<B: BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
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

fn train_or_infer<const D: usize>(norm: &BatchNorm, x: Tensor<D>, relu: bool) -> Tensor<D> {
    if !(x.device().is_autodiff() && norm.training.is_enabled()) {
        let y = norm.forward(x);
        return if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
    }
    let device = x.device();
    let (y, mean, variance) = <Dispatch as BatchNormOps>::batch_norm_train_lean(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
        relu,
    );
    let (mean, variance) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(variance),
    );
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
    Tensor::from_dispatch(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::simd::report_paths;

    /// Values with the cases the kernels must keep: zeros of both signs, NaN, infinities.
    fn tricky(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match state >> 28 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::NAN,
                    3 => f32::NEG_INFINITY,
                    _ => (state >> 8) as f32 / (1u32 << 22) as f32 - 2.0,
                }
            })
            .collect()
    }

    #[test]
    fn every_simd_path_computes_the_portable_bits() {
        let same = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
        };
        for simd in report_paths("batch norm kernels") {
            // lengths around the 16-lane registers and the 32 partial sums
            for n in [1, 7, 15, 16, 17, 31, 32, 33, 64, 100, 1024] {
                let (x, dy) = (tricky(n, n as u32), tricky(n, 7 * n as u32 + 1));
                let finite: Vec<f32> = x
                    .iter()
                    .map(|v| if v.is_finite() { *v } else { 0.5 })
                    .collect();
                for relu in [false, true] {
                    let (mut y, mut want) = (vec![0f32; n], vec![0f32; n]);
                    simd.run(|| normalize(&mut y, &x, 1.25, -0.5, relu));
                    normalize(&mut want, &x, 1.25, -0.5, relu);
                    assert!(same(&y, &want), "{simd:?} normalize n {n} relu {relu}");
                }
                let (mut dx, mut want) = (vec![0f32; n], vec![0f32; n]);
                let k = [0.75, 0.1, 1.5, -0.2, 0.3];
                simd.run(|| input_grad(&mut dx, &x, &dy, k));
                input_grad(&mut want, &x, &dy, k);
                assert!(same(&dx, &want), "{simd:?} input grad n {n}");
                simd.run(|| relu_mask(&mut dx, &x, &dy));
                relu_mask(&mut want, &x, &dy);
                assert!(same(&dx, &want), "{simd:?} relu mask n {n}");
                let got = simd.run(|| lane_sum(&finite, &dy, |a, b| a * b));
                let want = lane_sum(&finite, &dy, |a, b| a * b);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{simd:?} lane sum n {n}: {got} vs {want}"
                );
            }
        }
    }
}
