//! BatchNorm's CPU passes over `[b, c, pixels]` planes, and the fused BatchNorm -> ReLU: in
//! training the statistics, the normalised output and the gradients; in inference the output
//! from the running statistics.
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
//! The forward pass is two reads and one write per value (statistics, then the output), the
//! backward pass two reads and one write, with no layout change. The per-plane loops are plain
//! Rust compiled per SIMD path by [`Simd::run`]; they reorder no reduction, so every path gives
//! the portable bits.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::output::par_written;
use crate::scratch::with_scratch;
use crate::simd::Simd;

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
fn normalize(y: &mut [MaybeUninit<f32>], x: &[f32], a: f32, s: f32, relu: bool) {
    if relu {
        for (y, &x) in y.iter_mut().zip(x) {
            let z = x * a + s;
            y.write(if z <= 0.0 { 0.0 } else { z });
        }
    } else {
        for (y, &x) in y.iter_mut().zip(x) {
            y.write(x * a + s);
        }
    }
}

/// One plane of the input gradient: `dx = k (dy - mean_db - (x - m) s mean_dg)`.
#[inline(always)]
fn input_grad(
    dx: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    [k, m, s, mean_db, mean_dg]: [f32; 5],
) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
        dx.write(k * (g - mean_db - (x - m) * s * mean_dg));
    }
}

/// The ReLU's gradient: `dy` where the output `y` is above 0 (or NaN), else 0.
#[inline(always)]
fn relu_mask(masked: &mut [MaybeUninit<f32>], y: &[f32], dy: &[f32]) {
    for ((m, &y), &g) in masked.iter_mut().zip(y).zip(dy) {
        m.write(if y <= 0.0 { 0.0 } else { g });
    }
}

/// [`relu_mask`] in place: `dy` kept where the output `y` is above 0 (or NaN), else 0.
#[inline(always)]
fn relu_mask_in_place(dy: &mut [f32], y: &[f32]) {
    for (g, &y) in dy.iter_mut().zip(y) {
        *g = if y <= 0.0 { 0.0 } else { *g };
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

/// `(y, mean, variance)` of training-mode BatchNorm (with `relu`, `y = max(y, 0)`; a NaN stays
/// NaN): the batch statistics per channel (in f64, returned as f32) and the normalised output.
///
/// # Shapes
/// - `x`: `[b, c, n]` (`dims`, `n` the pixels of a plane); `gamma`, `beta`: `[c]`
/// - output: `y` as `x`; `mean`, `variance`: `[c]`
pub fn train_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dims: [usize; 3],
    epsilon: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [b, c, n] = dims;
    assert!(
        x.len() == b * c * n && gamma.len() == c && beta.len() == c,
        "batch norm: x must be [b, c, n] and gamma, beta [c]"
    );
    let (mean, var) = batch_stats(x, dims);
    let y = normalize_planes(x, gamma, beta, (&mean, &var), dims, epsilon, relu);
    (y, narrow(mean), narrow(var))
}

/// The batch mean and (biased) variance per channel of `x` `[b, c, n]`, in f64: two reads.
fn batch_stats(x: &[f32], dims: [usize; 3]) -> (Vec<f64>, Vec<f64>) {
    let [b, _, n] = dims;
    let count = (b * n) as f64;
    let simd = Simd::detect();
    let mean: Vec<f64> = channel_sums(x, dims, |_, p| simd.run(|| lane_sum(p, p, |v, _| v)))
        .into_iter()
        .map(|s| s / count)
        .collect();
    let var: Vec<f64> = channel_sums(x, dims, |ch, p| {
        let m = mean[ch] as f32;
        simd.run(|| lane_sum(p, p, |v, _| (v - m) * (v - m)))
    })
    .into_iter()
    .map(|s| s / count)
    .collect();
    (mean, var)
}

fn narrow(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|v| v as f32).collect()
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| v as f64).collect()
}

/// Training-mode BatchNorm -> ReLU -> 2x2, stride-2 max-pool as one op: `(y, mean, variance)`
/// with `y` the pooled output and the batch statistics per channel. The full-size activation is
/// never written: after the two statistics reads, each plane is normalised in cache and pooled
/// there ([`infer_relu_pool_2x2`] with the batch statistics rounded to f32, the ones returned),
/// and [`train_relu_pool_2x2_grads`] rebuilds it from `x` when the gradient needs it. The
/// unfused chain keeps the ReLU's output (the CNN's first one is 8 MiB at batch 64) from the
/// forward pass to the backward one, and its backward writes two more tensors of that size.
///
/// # Shapes
/// - `x`: `[b, c, h, w]` (`dims`); `gamma`, `beta`: `[c]`
/// - output: `y` `[b, c, h / 2, w / 2]`; `mean`, `variance`: `[c]`
pub fn train_relu_pool_2x2(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dims: [usize; 4],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [b, c, h, w] = dims;
    assert!(
        x.len() == b * c * h * w && gamma.len() == c && beta.len() == c,
        "batch norm: x must be [b, c, h, w] and gamma, beta [c]"
    );
    let (mean, var) = batch_stats(x, [b, c, h * w]);
    let (mean, var) = (narrow(mean), narrow(var));
    let y = infer_relu_pool_2x2(x, [gamma, beta, &mean, &var], dims, epsilon);
    (y, mean, var)
}

/// Inference-mode BatchNorm (with `relu`, then `max(y, 0)`; a NaN stays NaN): `x` normalised
/// with the given statistics (the running ones) in one pass, where burn's `batch_norm`
/// composes five whole-tensor passes (subtract, divide, multiply, add; the ReLU a sixth).
///
/// # Shapes
/// - `x`: `[b, c, n]` (`dims`); `gamma`, `beta`, `mean`, `variance`: `[c]`
/// - output: as `x`
pub fn infer_forward(
    x: &[f32],
    [gamma, beta, mean, variance]: [&[f32]; 4],
    dims: [usize; 3],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    let [b, c, n] = dims;
    assert!(
        x.len() == b * c * n && [gamma.len(), beta.len(), mean.len(), variance.len()] == [c; 4],
        "batch norm: x must be [b, c, n] and gamma, beta, mean and variance [c]"
    );
    let stats = (&wide(mean)[..], &wide(variance)[..]);
    normalize_planes(x, gamma, beta, stats, dims, epsilon, relu)
}

/// Inference-mode BatchNorm -> ReLU -> 2x2, stride-2 max-pool as one pass: exactly
/// [`infer_forward`] with `relu` followed by the pool (`max_pool::forward`), but each plane is
/// normalised into a scratch buffer in cache and pooled from there, so the full-size activation
/// (the CNN's first one is 33.5 MB at batch 256) is neither written to memory nor read back.
///
/// # Shapes
/// - `x`: `[b, c, h, w]` (`dims`); `gamma`, `beta`, `mean`, `variance`: `[c]`
/// - output: `[b, c, h / 2, w / 2]`
pub fn infer_relu_pool_2x2(
    x: &[f32],
    [gamma, beta, mean, variance]: [&[f32]; 4],
    dims: [usize; 4],
    epsilon: f64,
) -> Vec<f32> {
    let [b, c, h, w] = dims;
    assert!(
        x.len() == b * c * h * w && [gamma.len(), beta.len(), mean.len(), variance.len()] == [c; 4],
        "batch norm: x must be [b, c, h, w] and gamma, beta, mean and variance [c]"
    );
    let (scale, shift) = scale_shift(gamma, beta, (&wide(mean), &wide(variance)), epsilon);
    let simd = Simd::detect();
    crate::max_pool::forward_2x2_mapped(x, dims, |plane, x, out| {
        let (a, s) = (scale[plane % c], shift[plane % c]);
        // SAFETY: initialised floats viewed as `MaybeUninit`, which `normalize` only writes.
        let out = unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) };
        simd.run(|| normalize(out, x, a, s, true));
    })
}

/// Per channel `(scale, shift)` with `gamma (x - mean) / sqrt(var + eps) + beta = x * scale +
/// shift`, both from f64.
fn scale_shift(
    gamma: &[f32],
    beta: &[f32],
    (mean, var): (&[f64], &[f64]),
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = (0..gamma.len())
        .map(|ch| (gamma[ch] as f64 / (var[ch] + epsilon).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..gamma.len())
        .map(|ch| beta[ch] - (mean[ch] * scale[ch] as f64) as f32)
        .collect();
    (scale, shift)
}

/// `gamma (x - mean) / sqrt(var + eps) + beta` per channel (then the ReLU), as `x * scale +
/// shift` with both factors from f64: the output pass both modes share.
fn normalize_planes(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    (mean, var): (&[f64], &[f64]),
    [_, c, n]: [usize; 3],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    let (scale, shift) = scale_shift(gamma, beta, (mean, var), epsilon);
    let simd = Simd::detect();
    let planes = planes_per_task(n);
    // SAFETY: `normalize` writes every value of each plane of a piece (`x` has its length).
    unsafe {
        par_written(x.len(), planes * n, |task, ys| {
            for (i, y) in ys.chunks_mut(n.max(1)).enumerate() {
                let plane = task * planes + i;
                let x = &x[plane * n..][..y.len()];
                let (a, s) = (scale[plane % c], shift[plane % c]);
                simd.run(|| normalize(y, x, a, s, relu));
            }
        })
    }
}

/// Planes of `n` values per parallel task: one where a plane is long, else enough for some
/// thousand values, since the late layers' planes (16 values for the CNN's 4x4 maps) made as
/// many tasks as planes (a dispatch each).
fn planes_per_task(n: usize) -> usize {
    (4096 / n.max(1)).max(1)
}

/// `(dx, dgamma, dbeta)` of training-mode BatchNorm for the output gradient `dy`, from the
/// batch statistics [`train_forward`] returned.
///
/// # Shapes
/// - `x`, `dy`: `[b, c, n]` (`dims`); `gamma`, `mean`, `variance`: `[c]`
/// - output: `dx` as `x`; `dgamma`, `dbeta`: `[c]`
#[allow(clippy::too_many_arguments)]
pub fn train_grads(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    dy: &[f32],
    dims: [usize; 3],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [b, c, n] = dims;
    assert!(
        x.len() == b * c * n
            && dy.len() == x.len()
            && [gamma.len(), mean.len(), variance.len()] == [c; 3],
        "batch norm grads: x and dy must be [b, c, n], gamma, mean and variance [c]"
    );
    let planes = planes_per_task(n);
    let dy_of = |first: usize, count: usize, pass: &mut dyn FnMut(&[f32])| {
        pass(&dy[first * n..][..count * n])
    };
    grads_over_planes([gamma, mean, variance], x, dims, epsilon, planes, dy_of)
}

/// BatchNorm's backward passes, `(dx, dgamma, dbeta)`, for output gradients handed over a task
/// of planes at a time: `dy_of(first, count, pass)` calls `pass` with the gradient of planes
/// `first..first + count` (`[count, n]`), so that a fused op can rebuild it in cache instead
/// of reading it from memory. Tasks are `planes` planes (the last one shorter).
///
/// Per plane the sums `dbeta = sum(dy)` and `dgamma = sum(dy xhat)` in [`LANES`] partial f32
/// sums, then over the batch in f64, in the batch's order; then `dx` plane by plane.
fn grads_over_planes(
    [gamma, mean, variance]: [&[f32]; 3],
    x: &[f32],
    [b, c, n]: [usize; 3],
    epsilon: f64,
    planes: usize,
    dy_of: impl Fn(usize, usize, &mut dyn FnMut(&[f32])) + Sync,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let simd = Simd::detect();
    let planes = planes.max(1);
    // per plane (sum(dy), sum(dy (x - mean)) / std)
    let mut plane_sums = vec![(0f32, 0f32); b * c];
    plane_sums
        .par_chunks_mut(planes)
        .enumerate()
        .for_each(|(task, sums)| {
            let first = task * planes;
            dy_of(first, sums.len(), &mut |dy| {
                for (i, sum) in sums.iter_mut().enumerate() {
                    let p = first + i;
                    let (m, s) = (mean[p % c], inv_std[p % c]);
                    let (x, dy) = (&x[p * n..][..n], &dy[i * n..][..n]);
                    let pb = simd.run(|| lane_sum(dy, dy, |g, _| g));
                    let pg = simd.run(|| lane_sum(x, dy, |x, g| g * (x - m))) * s;
                    *sum = (pb, pg);
                }
            })
        });
    let sums: Vec<(f64, f64)> = (0..c)
        .map(|ch| {
            (0..b).fold((0f64, 0f64), |(db, dg), i| {
                let (pb, pg) = plane_sums[i * c + ch];
                (db + pb as f64, dg + pg as f64)
            })
        })
        .collect();
    let count = (b * n) as f64;
    // SAFETY: `input_grad` writes every value of each plane of a piece (`x` and `dy` have its
    // length).
    let dx = unsafe {
        par_written(x.len(), planes * n, |task, dxs| {
            let first = task * planes;
            dy_of(first, dxs.len() / n.max(1), &mut |dy| {
                for (i, dx) in dxs.chunks_mut(n.max(1)).enumerate() {
                    let p = first + i;
                    let (x, dy) = (&x[p * n..][..dx.len()], &dy[i * n..][..dx.len()]);
                    let ch = p % c;
                    let (m, s) = (mean[ch], inv_std[ch]);
                    let k = gamma[ch] * s;
                    let (mean_db, mean_dg) =
                        ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
                    simd.run(|| input_grad(dx, x, dy, [k, m, s, mean_db, mean_dg]));
                }
            })
        })
    };
    let dgamma = sums.iter().map(|s| s.1 as f32).collect();
    let dbeta = sums.iter().map(|s| s.0 as f32).collect();
    (dx, dgamma, dbeta)
}

/// `(dx, dgamma, dbeta)` of [`train_relu_pool_2x2`] for the pooled output's gradient `dy`, from
/// the batch statistics it returned: the pool's gradient to each window's first maximum, the
/// ReLU's mask, then BatchNorm's backward. Each task rebuilds its planes' ReLU output from `x`
/// in cache (the bits of the forward pass: the same statistics, the same pass) and their
/// gradient beside it, twice (once for the sums, once for `dx`): reading `x` again costs less
/// than writing and reading back the two full-size tensors the unfused chain's backward makes.
/// Bit for bit `train_grads` of `relu_grad(y, max_pool::input_grad(y, dy))` with `y` the ReLU's
/// output from these statistics.
///
/// # Shapes
/// - `x`: `[b, c, h, w]` (`dims`); `gamma`, `beta`, `mean`, `variance`: `[c]`;
///   `dy`: `[b, c, h / 2, w / 2]`
/// - output: `dx` as `x`; `dgamma`, `dbeta`: `[c]`
pub fn train_relu_pool_2x2_grads(
    x: &[f32],
    [gamma, beta, mean, variance]: [&[f32]; 4],
    dy: &[f32],
    dims: [usize; 4],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [b, c, h, w] = dims;
    let [ho, wo] = [h / 2, w / 2];
    let stats = [gamma.len(), beta.len(), mean.len(), variance.len()];
    assert!(
        x.len() == b * c * h * w && dy.len() == b * c * ho * wo && stats == [c; 4],
        "batch norm -> relu -> pool grads: x must be [b, c, h, w], dy [b, c, h / 2, w / 2], \
         gamma, beta, mean and variance [c]"
    );
    let (scale, shift) = scale_shift(gamma, beta, (&wide(mean), &wide(variance)), epsilon);
    let simd = Simd::detect();
    let n = h * w;
    let planes = crate::max_pool::planes_per_task_2x2([h, w], simd).max(planes_per_task(n));
    let dy_of = |first: usize, count: usize, pass: &mut dyn FnMut(&[f32])| {
        with_scratch(count * n, count * n, |y, dy_full| {
            for (i, y) in y.chunks_exact_mut(n).enumerate() {
                let p = first + i;
                let x = &x[p * n..][..n];
                // SAFETY: initialised floats viewed as `MaybeUninit`, which `normalize` only
                // writes.
                let y = unsafe { &mut *(y as *mut [f32] as *mut [MaybeUninit<f32>]) };
                simd.run(|| normalize(y, x, scale[p % c], shift[p % c], true));
            }
            // the pool's gradient writes every value (zeros where no maximum sits)
            let dy = &dy[first * ho * wo..][..count * ho * wo];
            crate::max_pool::grad_2x2_planes(y, dy, [h, w], dy_full, simd);
            simd.run(|| relu_mask_in_place(dy_full, y));
            pass(dy_full)
        })
    };
    grads_over_planes(
        [gamma, mean, variance],
        x,
        [b, c, n],
        epsilon,
        planes,
        dy_of,
    )
}

/// The ReLU's gradient of the fused BatchNorm -> ReLU: `dy` where the op's output is above 0
/// (or NaN), else 0; one pass in parallel (instead of burn's mask tensor and fill).
///
/// # Shapes
/// - `output`, `dy`: any, the same length; output: the same
pub fn relu_grad(output: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        output.len(),
        dy.len(),
        "relu grad: output and dy of other lengths"
    );
    let chunk = 1 << 16;
    let simd = Simd::detect();
    // SAFETY: `relu_mask` writes every value of its piece (`y` and `g` have its length).
    unsafe {
        par_written(dy.len(), chunk, |i, m| {
            let (y, g) = (&output[i * chunk..][..m.len()], &dy[i * chunk..][..m.len()]);
            simd.run(|| relu_mask(m, y, g));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::report_paths;

    #[test]
    fn inference_with_the_batch_statistics_is_the_training_output() {
        // The same statistics must give the same bits: both modes share the output pass.
        let dims = [3, 5, 37];
        let x = crate::test_values::tricky(3 * 5 * 37, 11, &[0.0, -0.0], 2.0);
        let gamma = [0.5, 1.5, -1.0, 2.0, 0.25];
        let beta = [0.1, -0.2, 0.0, 0.3, -1.0];
        for relu in [false, true] {
            let (y, mean, var) = train_forward(&x, &gamma, &beta, dims, 1e-5, relu);
            let got = infer_forward(&x, [&gamma, &beta, &mean, &var], dims, 1e-5, relu);
            // the f32 statistics widen back to other f64 values than train_forward kept
            let close = got
                .iter()
                .zip(&y)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            assert!(
                close,
                "relu {relu}: inference differs from training's output"
            );
            assert!(
                !relu || got.iter().all(|&v| v >= 0.0),
                "relu left a negative value"
            );
        }
        let wrong = std::panic::catch_unwind(|| {
            infer_forward(&x, [&gamma, &beta, &gamma[..4], &gamma], dims, 1e-5, false)
        });
        assert!(
            wrong.is_err(),
            "statistics of the wrong length must be refused"
        );
    }

    /// The fused pools' shapes and seeds: the CNN's four pools (32, 16, 8 and 4 pixels a side:
    /// wide rows, then planes side by side), odd sides (the last row and column dropped), planes
    /// narrower than a register.
    const POOL_CASES: [([usize; 4], u32); 6] = [
        ([2, 3, 32, 32], 1),
        ([3, 4, 16, 16], 2),
        ([2, 5, 8, 8], 3),
        ([64, 6, 4, 4], 4),
        ([2, 3, 7, 9], 5),
        ([1, 2, 2, 3], 6),
    ];

    /// A BatchNorm's `(gamma, beta)` over `c` channels, negative scales included.
    fn affine(c: usize) -> (Vec<f32>, Vec<f32>) {
        let gamma = (0..c).map(|i| [0.5, -1.5, 2.0][i % 3]).collect();
        let beta = (0..c).map(|i| 0.1 * i as f32 - 0.2).collect();
        (gamma, beta)
    }

    #[test]
    fn inference_relu_pool_in_one_pass_is_the_three_passes_bit_for_bit() {
        use crate::max_pool::{self, PoolWindow};
        let window = PoolWindow::PLAIN_2X2;
        // on the detected path: `normalize` and the 2x2 pool are held to the portable bits on
        // every path by their own tests
        eprintln!(
            "batch norm -> relu -> 2x2 pool, one pass: path {}",
            Simd::detect().name()
        );
        for (dims, seed) in POOL_CASES {
            let [b, c, h, w] = dims;
            let x = crate::test_values::tricky(b * c * h * w, seed, &[0.0, -0.0, 1.0], 2.0);
            let (gamma, beta) = affine(c);
            let mean: Vec<f32> = (0..c).map(|i| 0.05 * i as f32).collect();
            let var: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
            let stats = [&gamma[..], &beta, &mean, &var];
            let y = infer_forward(&x, stats, [b, c, h * w], 1e-5, true);
            let want = max_pool::forward(&y, dims, &window);
            let got = infer_relu_pool_2x2(&x, stats, dims, 1e-5);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{dims:?}");
        }
    }

    #[test]
    fn training_relu_pool_in_one_op_is_the_unfused_chain_bit_for_bit() {
        use crate::max_pool::{self, PoolWindow};
        let window = PoolWindow::PLAIN_2X2;
        eprintln!(
            "training batch norm -> relu -> 2x2 pool, one op: path {}",
            Simd::detect().name()
        );
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // with the pool's cases (in training the dropped row and column of an odd side still
        // get BatchNorm's gradient), many channels: more planes than a task takes
        for (dims, seed) in POOL_CASES.into_iter().chain([([4, 300, 4, 4], 7)]) {
            let [b, c, h, w] = dims;
            let n = h * w;
            // ties (1.0 repeated) and signed zeros decide which value of a window wins
            let x = crate::test_values::tricky(b * c * n, seed, &[0.0, -0.0, 1.0], 2.0);
            let dy = crate::test_values::tricky(b * c * (h / 2) * (w / 2), seed + 50, &[0.0], 1.0);
            let (gamma, beta) = affine(c);
            let (y, mean, var) = train_relu_pool_2x2(&x, &gamma, &beta, dims, 1e-5);
            // the statistics are the unfused training op's, its output the same within the
            // rounding of the statistics to f32
            let (y_full, mean_ref, var_ref) =
                train_forward(&x, &gamma, &beta, [b, c, n], 1e-5, true);
            assert_eq!(bits(&mean), bits(&mean_ref), "{dims:?}: mean");
            assert_eq!(bits(&var), bits(&var_ref), "{dims:?}: variance");
            let pooled = max_pool::forward(&y_full, dims, &window);
            let close = y
                .iter()
                .zip(&pooled)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            assert!(close, "{dims:?}: output far from the unfused chain's");
            // bit for bit the unfused chain with the statistics it returned
            let stats = [&gamma[..], &beta, &mean, &var];
            let relu = infer_forward(&x, stats, [b, c, n], 1e-5, true);
            assert_eq!(
                bits(&y),
                bits(&max_pool::forward(&relu, dims, &window)),
                "{dims:?}"
            );
            let (dx, dgamma, dbeta) = train_relu_pool_2x2_grads(&x, stats, &dy, dims, 1e-5);
            let through = relu_grad(&relu, &max_pool::input_grad(&relu, &dy, dims, &window));
            let want = train_grads(&x, &gamma, &mean, &var, &through, [b, c, n], 1e-5);
            assert_eq!(bits(&dx), bits(&want.0), "{dims:?}: dx");
            assert_eq!(bits(&dgamma), bits(&want.1), "{dims:?}: dgamma");
            assert_eq!(bits(&dbeta), bits(&want.2), "{dims:?}: dbeta");
            assert!(
                dx.iter().any(|&v| v != 0.0),
                "{dims:?}: no gradient reached x"
            );
        }
        let wrong = std::panic::catch_unwind(|| {
            let x = vec![0.5f32; 2 * 3 * 4 * 4];
            let stats = [&[1.0f32; 3][..], &[0.0; 3], &[0.0; 3], &[1.0; 3]];
            train_relu_pool_2x2_grads(&x, stats, &[0.0; 10], [2, 3, 4, 4], 1e-5)
        });
        assert!(
            wrong.is_err(),
            "a pooled gradient of the wrong length must be refused"
        );
    }

    /// What `pass` writes into `n` floats, each checked written (they start as a sentinel no
    /// pass of these inputs produces).
    fn written(n: usize, pass: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
        const UNWRITTEN: f32 = 12345.0;
        let mut out = vec![MaybeUninit::new(UNWRITTEN); n];
        pass(&mut out);
        // SAFETY: every element was initialised (to the sentinel) before the pass.
        let out: Vec<f32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert!(!out.contains(&UNWRITTEN), "a pass left a value unwritten");
        out
    }

    /// Values with the cases the kernels must keep: zeros of both signs, NaN, infinities.
    fn tricky(n: usize, seed: u32) -> Vec<f32> {
        crate::test_values::tricky(n, seed, &[0.0, -0.0, f32::NAN, f32::NEG_INFINITY], 2.0)
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
                    let y = written(n, |y| simd.run(|| normalize(y, &x, 1.25, -0.5, relu)));
                    let want = written(n, |y| normalize(y, &x, 1.25, -0.5, relu));
                    assert!(same(&y, &want), "{simd:?} normalize n {n} relu {relu}");
                }
                let k = [0.75, 0.1, 1.5, -0.2, 0.3];
                let dx = written(n, |dx| simd.run(|| input_grad(dx, &x, &dy, k)));
                let want = written(n, |dx| input_grad(dx, &x, &dy, k));
                assert!(same(&dx, &want), "{simd:?} input grad n {n}");
                let dx = written(n, |m| simd.run(|| relu_mask(m, &x, &dy)));
                let want = written(n, |m| relu_mask(m, &x, &dy));
                assert!(same(&dx, &want), "{simd:?} relu mask n {n}");
                let mut in_place = dy.clone();
                simd.run(|| relu_mask_in_place(&mut in_place, &x));
                assert!(same(&in_place, &want), "{simd:?} relu mask in place n {n}");
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
