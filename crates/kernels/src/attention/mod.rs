//! CPU kernels of pixel attention (on contiguous `f32` slices): groups in parallel (rayon), SIMD
//! exponentials, and blocks of query rows so scratch stays small.
//!
//! Two kernels, by head width:
//!
//! - **outer** (`dk = dv = 1`, arch 1): the scores of a row are `q_i k_j`, an outer product, so
//!   the row maximum is `q_i max(k)` or `q_i min(k)` (by the sign of `q_i`) and each score costs
//!   one multiply: forward is one pass of `exp` over the `n x n` pairs; backward is one more, with
//!   the row sums (for `dq`) and column sums (for `dk`, `dv`) gathered in the same pass:
//!   `ds_ij = P_ij dy_i (v_j - y_i)`, so
//!   `dq_i = scale dy_i (sum_j P_ij v_j k_j - y_i sum_j P_ij k_j)`,
//!   `dk_j = v_j sum_i P_ij dy_i q'_i - sum_i P_ij dy_i y_i q'_i` (`q' = scale q`),
//!   `dv_j = sum_i P_ij dy_i`.
//! - **dense** (any width, arch 2): blocks of [`BLOCK_ROWS`] query rows; the block's scores,
//!   `dy^T v`, and the products into `y`, `dq`, `dk`, `dv` are matrix products (the `gemm` crate
//!   that burn-flex uses); the softmax between them is SIMD code.
//!
//! Exponentials are powers of two: scores are computed in base 2 (`log2 e` folded into the
//! query scale), which saves the range reduction of `e^x`; `lse` is returned in natural units.
//! Both kernels come as AVX-512 and AVX2+FMA intrinsics (picked at run time, [`Simd`], on x86-64
//! CPUs that have them; one macro body for both, [`avx`]) and as portable Rust ([`portable`]).
//!
//! Only `f32` runs here; visionnet's `model::ops::attention` sends other float types (and other
//! backends) down its portable tiled path.

use rayon::prelude::*;

use crate::matmul::{View, matmul};
use crate::simd::Simd;

#[cfg(target_arch = "x86_64")]
pub mod avx;
pub mod portable;
#[cfg(test)]
mod tests;

/// Query rows per block in the dense kernel. Few rows keep a block's scores and gradients
/// (8 rows of 1024 scores, arch 2's first layer: 32 KB each) in L1, and, more than that, keep
/// the products that read `P` or `dS` transposed (`v P^T`, `k dS^T`) `t` = 8 columns wide,
/// which gemm's narrow kernels take as they stand: at 32 rows its packing and driver loop took
/// half of an attn2 inference step, at 8 rows 3% (perf, Zen 4). `scripts/bench_ab.sh`, 2-core
/// Zen 4: 32 -> 16 rows gave attn2 training 1.14x and 1.18x, inference 1.50x; 16 -> 8 training
/// 1.03x and 1.05x, inference 1.33x; 4 rows were no faster than 8 (1.01x, 1.04x). (On Zen 1,
/// 32 rows had beaten 64 by 1.06x.)
pub const BLOCK_ROWS: usize = 8;

/// Groups per rayon task so that each task has at least ~64k score pairs of work.
fn groups_per_task(n: usize) -> usize {
    (65_536 / (n * n).max(1)).max(1)
}

/// Forward of `g` groups: `(y [g, dv, n], lse [g, n])`.
///
/// # Shapes
/// - `q`, `k`: `[g, dk, n]` (`dims`); `v`: `[g, dv, n]`, all contiguous
///
/// # Panics
/// If a slice's length is not its shape's.
pub fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    [g, dk, n]: [usize; 3],
    dv: usize,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    assert!(
        q.len() == g * dk * n && k.len() == g * dk * n && v.len() == g * dv * n,
        "pixel attention forward: slices of other shapes than [g, dk, n] and [g, dv, n]"
    );
    let simd = Simd::detect();
    let mut y = vec![0f32; g * dv * n];
    let mut lse = vec![0f32; g * n];
    if y.is_empty() || lse.is_empty() {
        return (y, lse);
    }
    y.par_chunks_mut(dv * n)
        .zip(lse.par_chunks_mut(n))
        .enumerate()
        .with_min_len(groups_per_task(n))
        .for_each(|(gi, (y, lse))| {
            let q = &q[gi * dk * n..(gi + 1) * dk * n];
            let k = &k[gi * dk * n..(gi + 1) * dk * n];
            let v = &v[gi * dv * n..(gi + 1) * dv * n];
            if dk == 1 && dv == 1 {
                outer_forward(simd, q, k, v, scale, y, lse);
            } else {
                dense_forward(simd, q, k, v, dk, dv, n, scale, y, lse);
            }
        });
    (y, lse)
}

/// Backward of `g` groups: `(dq, dk, dv)` from the forward inputs, its outputs `y` and `lse`,
/// and the output gradient `dy`.
///
/// # Shapes
/// - `q`, `k`: `[g, dk, n]` (`dims`); `v`, `y`, `dy`: `[g, dv, n]`; `lse`: `[g, n]`, all
///   contiguous
/// - output: `[g, dk, n]`, `[g, dk, n]`, `[g, dv, n]`
///
/// # Panics
/// If a slice's length is not its shape's.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    y: &[f32],
    lse: &[f32],
    dy: &[f32],
    [g, dk, n]: [usize; 3],
    dv: usize,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        q.len() == g * dk * n
            && k.len() == g * dk * n
            && [v.len(), y.len(), dy.len()] == [g * dv * n; 3]
            && lse.len() == g * n,
        "pixel attention backward: slices of other shapes than their [g, dk | dv, n]"
    );
    let simd = Simd::detect();
    let mut dq = vec![0f32; g * dk * n];
    let mut dk_out = vec![0f32; g * dk * n];
    let mut dv_out = vec![0f32; g * dv * n];
    if dq.is_empty() || dv_out.is_empty() {
        return (dq, dk_out, dv_out);
    }
    dq.par_chunks_mut(dk * n)
        .zip(dk_out.par_chunks_mut(dk * n))
        .zip(dv_out.par_chunks_mut(dv * n))
        .enumerate()
        .with_min_len(groups_per_task(n))
        .for_each(|(gi, ((dq, dk_g), dv_g))| {
            let q = &q[gi * dk * n..(gi + 1) * dk * n];
            let k = &k[gi * dk * n..(gi + 1) * dk * n];
            let v = &v[gi * dv * n..(gi + 1) * dv * n];
            let y = &y[gi * dv * n..(gi + 1) * dv * n];
            let dy = &dy[gi * dv * n..(gi + 1) * dv * n];
            let lse = &lse[gi * n..(gi + 1) * n];
            if dk == 1 && dv == 1 {
                outer_backward(simd, q, k, v, y, lse, dy, scale, dq, dk_g, dv_g);
            } else {
                dense_backward(simd, q, k, v, y, lse, dy, dk, dv, n, scale, dq, dk_g, dv_g);
            }
        });
    (dq, dk_out, dv_out)
}

// ---------------------------------------------------------------------------------------------
// Per-group kernels, each in three versions: AVX-512 and AVX2+FMA intrinsics (x86-64 CPUs that
// have them, picked at run time) and portable Rust. The dispatchers below take the path, so tests
// can hold every path the CPU runs against the portable one.

/// [`portable::outer_forward`] on the path `simd` (one the CPU supports).
///
/// # Panics
/// If the CPU cannot run `simd`.
pub fn outer_forward(
    simd: Simd,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scale: f32,
    y: &mut [f32],
    lse: &mut [f32],
) {
    assert!(
        simd.is_supported(),
        "the {} kernels on a CPU without them",
        simd.name()
    );
    #[cfg(target_arch = "x86_64")]
    match simd {
        // SAFETY: the CPU supports the path (asserted above).
        Simd::Avx512 => return unsafe { avx::avx512::outer_forward(q, k, v, scale, y, lse) },
        Simd::Avx2 => return unsafe { avx::avx2::outer_forward(q, k, v, scale, y, lse) },
        Simd::Portable => {}
    }
    portable::outer_forward(q, k, v, scale, y, lse)
}

/// [`portable::outer_backward`] on the path `simd` (one the CPU supports).
///
/// # Panics
/// If the CPU cannot run `simd`.
#[allow(clippy::too_many_arguments)]
pub fn outer_backward(
    simd: Simd,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    y: &[f32],
    lse: &[f32],
    dy: &[f32],
    scale: f32,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    assert!(
        simd.is_supported(),
        "the {} kernels on a CPU without them",
        simd.name()
    );
    #[cfg(target_arch = "x86_64")]
    match simd {
        // SAFETY: the CPU supports the path (asserted above).
        Simd::Avx512 => {
            return unsafe { avx::avx512::outer_backward(q, k, v, y, lse, dy, scale, dq, dk, dv) };
        }
        Simd::Avx2 => {
            return unsafe { avx::avx2::outer_backward(q, k, v, y, lse, dy, scale, dq, dk, dv) };
        }
        Simd::Portable => {}
    }
    portable::outer_backward(q, k, v, y, lse, dy, scale, dq, dk, dv)
}

/// [`portable::softmax_rows`] on the path `simd` (one the CPU supports).
///
/// # Panics
/// If the CPU cannot run `simd`.
pub fn softmax_rows(simd: Simd, p: &mut [f32], n: usize, lse: &mut [f32], inv_sum: &mut [f32]) {
    assert!(
        simd.is_supported(),
        "the {} kernels on a CPU without them",
        simd.name()
    );
    #[cfg(target_arch = "x86_64")]
    match simd {
        // SAFETY: the CPU supports the path (asserted above).
        Simd::Avx512 => return unsafe { avx::avx512::softmax_rows(p, n, lse, inv_sum) },
        Simd::Avx2 => return unsafe { avx::avx2::softmax_rows(p, n, lse, inv_sum) },
        Simd::Portable => {}
    }
    portable::softmax_rows(p, n, lse, inv_sum)
}

/// [`portable::softmax_grad_rows`] on the path `simd` (one the CPU supports).
///
/// # Panics
/// If the CPU cannot run `simd`.
pub fn softmax_grad_rows(
    simd: Simd,
    p: &mut [f32],
    ds: &mut [f32],
    n: usize,
    lse: &[f32],
    d: &[f32],
    scale: f32,
) {
    assert!(
        simd.is_supported(),
        "the {} kernels on a CPU without them",
        simd.name()
    );
    #[cfg(target_arch = "x86_64")]
    match simd {
        // SAFETY: the CPU supports the path (asserted above).
        Simd::Avx512 => return unsafe { avx::avx512::softmax_grad_rows(p, ds, n, lse, d, scale) },
        Simd::Avx2 => return unsafe { avx::avx2::softmax_grad_rows(p, ds, n, lse, d, scale) },
        Simd::Portable => {}
    }
    portable::softmax_grad_rows(p, ds, n, lse, d, scale)
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2: f32 = std::f32::consts::LN_2;
/// 1.5 * 2^23: adding it to a float rounds it to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Cephes' `exp2f` polynomial on `[-1/2, 1/2]`, highest degree first: `2^r ~ 1 + r p(r)`.
const EXP2_POLY: [f32; 6] = [
    1.535_336_2e-4,
    1.339_887_4e-3,
    9.618_437e-3,
    5.550_332_5e-2,
    2.402_264_8e-1,
    6.931_472e-1,
];
/// Exponents are clamped to `[-100, 100]`: `2^-100` (~1e-30) stands for anything smaller, which
/// no `f32` sum next to the row's largest term (1) can tell apart, and no denormals arise.
const EXP2_MIN: f32 = -100.0;
const EXP2_MAX: f32 = 100.0;

// ---------------------------------------------------------------------------------------------
// Dense kernel: any dk, dv; matrix products through gemm ([`matmul`]).

/// Heads at most this wide take [`avx::avx2::thin_scores`] (or its AVX-512 form) instead of a
/// matrix product for the scores: a product only `dk` deep (4 at arch 2's first layer) spends
/// more on packing and on writing its output than on multiply-adds.
const THIN_SCORES: usize = 8;

/// A block of `t` rows of base-2 scores, `p [t, n] = alpha * q[:, start..start + t]^T k`, with
/// `q`, `k` `[dk, n]`, on the path `simd` (one the CPU supports).
///
/// # Panics
/// If the CPU cannot run `simd`.
#[allow(clippy::too_many_arguments)]
pub fn scores(
    simd: Simd,
    p: &mut [f32],
    q: &[f32],
    start: usize,
    t: usize,
    k: &[f32],
    dk: usize,
    n: usize,
    alpha: f32,
) {
    assert!(
        simd.is_supported(),
        "the {} kernels on a CPU without them",
        simd.name()
    );
    #[cfg(target_arch = "x86_64")]
    if dk <= THIN_SCORES {
        match simd {
            // SAFETY: the CPU supports the path (asserted above).
            Simd::Avx512 => {
                return unsafe { avx::avx512::thin_scores(p, q, start, t, k, dk, n, alpha) };
            }
            Simd::Avx2 => {
                return unsafe { avx::avx2::thin_scores(p, q, start, t, k, dk, n, alpha) };
            }
            Simd::Portable => {}
        }
    }
    matmul(
        p,
        View::new(0, t, n, n, 1),
        false,
        q,
        View::new(start, t, dk, 1, n),
        k,
        View::new(0, dk, n, n, 1),
        alpha,
    );
}

/// Dense forward of one group: `q`, `k` `[dk, n]`, `v` `[dv, n]` -> `y` `[dv, n]`, `lse` `[n]`.
#[allow(clippy::too_many_arguments)]
fn dense_forward(
    simd: Simd,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dk: usize,
    dv: usize,
    n: usize,
    scale: f32,
    y: &mut [f32],
    lse: &mut [f32],
) {
    let mut p = vec![0f32; BLOCK_ROWS.min(n) * n];
    let mut inv_sum = [0f32; BLOCK_ROWS];
    for start in (0..n).step_by(BLOCK_ROWS) {
        let t = BLOCK_ROWS.min(n - start);
        let p = &mut p[..t * n];
        // base-2 scores log2(e) * scale * q_t^T k: [t, n]
        scores(simd, p, q, start, t, k, dk, n, scale * LOG2E);
        // the softmax's numerators; the division by each row's sum comes after the product
        softmax_rows(simd, p, n, &mut lse[start..start + t], &mut inv_sum[..t]);
        // y[:, block] = v P^T: [dv, t], each column then divided by its row's sum
        matmul(
            y,
            View::new(start, dv, t, n, 1),
            false,
            v,
            View::new(0, dv, n, n, 1),
            p,
            View::new(0, n, t, 1, n),
            1.0,
        );
        for row in y.chunks_exact_mut(n) {
            for (value, &inv) in row[start..start + t].iter_mut().zip(&inv_sum[..t]) {
                *value *= inv;
            }
        }
    }
}

/// Dense backward of one group.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    simd: Simd,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    y: &[f32],
    lse: &[f32],
    dy: &[f32],
    dk: usize,
    dv: usize,
    n: usize,
    scale: f32,
    dq_out: &mut [f32],
    dk_out: &mut [f32],
    dv_out: &mut [f32],
) {
    // D_i = sum_c dy[c, i] y[c, i]
    let mut d = vec![0f32; n];
    for c in 0..dv {
        for ((d, &g), &o) in d
            .iter_mut()
            .zip(&dy[c * n..(c + 1) * n])
            .zip(&y[c * n..(c + 1) * n])
        {
            *d += g * o;
        }
    }
    let rows = BLOCK_ROWS.min(n);
    let mut p = vec![0f32; rows * n];
    let mut ds = vec![0f32; rows * n];
    dk_out.fill(0.0);
    dv_out.fill(0.0);
    for start in (0..n).step_by(BLOCK_ROWS) {
        let t = BLOCK_ROWS.min(n - start);
        let (p, ds) = (&mut p[..t * n], &mut ds[..t * n]);
        let block = View::new(0, t, n, n, 1); // a [t, n] scratch block
        // base-2 scores as in the forward pass, and dP = dy_t^T v: [t, n] each
        scores(simd, p, q, start, t, k, dk, n, scale * LOG2E);
        matmul(
            ds,
            block,
            false,
            dy,
            View::new(start, t, dv, 1, n),
            v,
            View::new(0, dv, n, n, 1),
            1.0,
        );
        // one pass: P = exp(scale * q_t^T k - lse), dS = scale * P * (dP - D)
        softmax_grad_rows(
            simd,
            p,
            ds,
            n,
            &lse[start..start + t],
            &d[start..start + t],
            scale,
        );
        // dq[:, block] = k dS^T: [dk, t]
        matmul(
            dq_out,
            View::new(start, dk, t, n, 1),
            false,
            k,
            View::new(0, dk, n, n, 1),
            ds,
            View::new(0, n, t, 1, n),
            1.0,
        );
        // dk += q_t dS: [dk, n]
        matmul(
            dk_out,
            View::new(0, dk, n, n, 1),
            true,
            q,
            View::new(start, dk, t, n, 1),
            ds,
            block,
            1.0,
        );
        // dv += dy_t P: [dv, n]
        matmul(
            dv_out,
            View::new(0, dv, n, n, 1),
            true,
            dy,
            View::new(start, dv, t, n, 1),
            p,
            block,
            1.0,
        );
    }
}
