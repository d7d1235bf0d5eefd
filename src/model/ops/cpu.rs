//! CPU kernels of pixel attention for the `flex` backend: groups in parallel (rayon), SIMD
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
//! CPUs that have them) and as portable Rust.
//!
//! Only `f32` runs here; other float types take the [`tiled`](super::tiled) path.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::simd::Simd;

/// Query rows per block in the dense kernel: 32 rows of 1024 scores (arch 2's first layer) and
/// their gradients, 256 KB together, stay in a 512 KB L2 cache (attn2 training 1.06x over 64
/// rows in `scripts/bench_ab.sh` on a 2-core Zen 1).
pub const BLOCK_ROWS: usize = 32;

/// Whether these tensors can run on the CPU kernels (all `f32`).
pub fn supports(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

/// A contiguous copy (or the tensor itself when already contiguous). Shared by the flex kernels
/// of this module's siblings (conv, BatchNorm).
pub(super) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

pub(super) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

pub(super) fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// Groups per rayon task so that each task has at least ~64k score pairs of work.
fn groups_per_task(n: usize) -> usize {
    (65_536 / (n * n).max(1)).max(1)
}

/// Forward: `(y [g, dv, n], lse [g, n])`.
pub fn forward(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    scale: f32,
) -> (FlexTensor, FlexTensor) {
    let [g, dk, n] = dims3(&q);
    let dv = dims3(&v)[1];
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (qs, ks, vs) = (values(&q), values(&k), values(&v));
    let simd = Simd::detect();
    let mut y = vec![0f32; g * dv * n];
    let mut lse = vec![0f32; g * n];
    y.par_chunks_mut(dv * n)
        .zip(lse.par_chunks_mut(n))
        .enumerate()
        .with_min_len(groups_per_task(n))
        .for_each(|(gi, (y, lse))| {
            let q = &qs[gi * dk * n..(gi + 1) * dk * n];
            let k = &ks[gi * dk * n..(gi + 1) * dk * n];
            let v = &vs[gi * dv * n..(gi + 1) * dv * n];
            if dk == 1 && dv == 1 {
                outer_forward(simd, q, k, v, scale, y, lse);
            } else {
                dense_forward(simd, q, k, v, dk, dv, n, scale, y, lse);
            }
        });
    (tensor(y, vec![g, dv, n]), tensor(lse, vec![g, n]))
}

/// Backward: `(dq, dk, dv)`.
pub fn backward(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    y: FlexTensor,
    lse: FlexTensor,
    dy: FlexTensor,
    scale: f32,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [g, dk, n] = dims3(&q);
    let dv = dims3(&v)[1];
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (y, lse, dy) = (contiguous(y), contiguous(lse), contiguous(dy));
    let (qs, ks, vs) = (values(&q), values(&k), values(&v));
    let (ys, lses, dys) = (values(&y), values(&lse), values(&dy));
    let simd = Simd::detect();
    let mut dq = vec![0f32; g * dk * n];
    let mut dk_out = vec![0f32; g * dk * n];
    let mut dv_out = vec![0f32; g * dv * n];
    dq.par_chunks_mut(dk * n)
        .zip(dk_out.par_chunks_mut(dk * n))
        .zip(dv_out.par_chunks_mut(dv * n))
        .enumerate()
        .with_min_len(groups_per_task(n))
        .for_each(|(gi, ((dq, dk_g), dv_g))| {
            let q = &qs[gi * dk * n..(gi + 1) * dk * n];
            let k = &ks[gi * dk * n..(gi + 1) * dk * n];
            let v = &vs[gi * dv * n..(gi + 1) * dv * n];
            let y = &ys[gi * dv * n..(gi + 1) * dv * n];
            let dy = &dys[gi * dv * n..(gi + 1) * dv * n];
            let lse = &lses[gi * n..(gi + 1) * n];
            if dk == 1 && dv == 1 {
                outer_backward(simd, q, k, v, y, lse, dy, scale, dq, dk_g, dv_g);
            } else {
                dense_backward(simd, q, k, v, y, lse, dy, dk, dv, n, scale, dq, dk_g, dv_g);
            }
        });
    (
        tensor(dq, vec![g, dk, n]),
        tensor(dk_out, vec![g, dk, n]),
        tensor(dv_out, vec![g, dv, n]),
    )
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
        Simd::Avx512 => return unsafe { avx512::outer_forward(q, k, v, scale, y, lse) },
        Simd::Avx2 => return unsafe { avx2::outer_forward(q, k, v, scale, y, lse) },
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
            return unsafe { avx512::outer_backward(q, k, v, y, lse, dy, scale, dq, dk, dv) };
        }
        Simd::Avx2 => {
            return unsafe { avx2::outer_backward(q, k, v, y, lse, dy, scale, dq, dk, dv) };
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
        Simd::Avx512 => return unsafe { avx512::softmax_rows(p, n, lse, inv_sum) },
        Simd::Avx2 => return unsafe { avx2::softmax_rows(p, n, lse, inv_sum) },
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
        Simd::Avx512 => return unsafe { avx512::softmax_grad_rows(p, ds, n, lse, d, scale) },
        Simd::Avx2 => return unsafe { avx2::softmax_grad_rows(p, ds, n, lse, d, scale) },
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

/// Portable kernels (any CPU), the scalar form of the [`avx2`] ones. Slices are one group's:
/// `q`, `k`, `v`, `y`, `lse`, `dy` all `[n]` in the outer kernel; `p` is a block of rows of `n`
/// scores (base 2) in the row kernels.
pub mod portable {
    use super::{EXP2_MAX, EXP2_MIN, EXP2_POLY, LN2, LOG2E, ROUND};

    /// `2^x` for `f32` to about 2 ulp (Cephes' `exp2f`), branch-free; `x` clamped to
    /// `[-100, 100]`.
    #[inline(always)]
    pub fn exp2(x: f32) -> f32 {
        let x = x.clamp(EXP2_MIN, EXP2_MAX);
        let t = x + ROUND;
        let r = x - (t - ROUND); // x minus the nearest integer n, in [-1/2, 1/2]
        let p = EXP2_POLY[1..].iter().fold(EXP2_POLY[0], |p, &c| p * r + c);
        let n = t.to_bits() as i32 - ROUND.to_bits() as i32; // n, from t's mantissa
        (p * r + 1.0) * f32::from_bits(((n + 127) << 23) as u32)
    }

    /// The smallest and largest of `k`.
    pub fn min_max(k: &[f32]) -> (f32, f32) {
        k.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    }

    /// Outer-kernel forward: `y_i = sum_j A_ij v_j`, `lse_i`, `A_i = softmax_j(scale q_i k_j)`.
    pub fn outer_forward(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f32,
        y: &mut [f32],
        lse: &mut [f32],
    ) {
        let (k_min, k_max) = min_max(k);
        for i in 0..k.len() {
            let qi = q[i] * scale * LOG2E; // base-2 scores q_i k_j
            let m = if qi >= 0.0 { qi * k_max } else { qi * k_min }; // the row's largest score
            let (mut l, mut o) = (0f32, 0f32);
            for (&kj, &vj) in k.iter().zip(v) {
                let e = exp2(qi * kj - m);
                l += e;
                o += e * vj;
            }
            y[i] = o / l;
            lse[i] = (m + l.log2()) * LN2;
        }
    }

    /// Outer-kernel backward: `dq`, `dk`, `dv` (see the [module](super) formulas).
    #[allow(clippy::too_many_arguments)]
    pub fn outer_backward(
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
        let n = k.len();
        // Column sums over query rows i: sum_i P_ij dy_i q'_i and sum_i P_ij dy_i y_i q'_i (for
        // dk), sum_i P_ij dy_i (= dv).
        let mut col_a = vec![0f32; n];
        let mut col_b = vec![0f32; n];
        dv.fill(0.0);
        for i in 0..n {
            let (qi, gi, yi) = (q[i] * scale, dy[i], y[i]);
            let (q2, l2) = (qi * LOG2E, lse[i] * LOG2E);
            let (a, b) = (gi * qi, gi * yi * qi);
            let (mut s1, mut s2) = (0f32, 0f32); // sum_j P_ij v_j k_j, sum_j P_ij k_j
            for j in 0..n {
                let p = exp2(q2 * k[j] - l2);
                s1 += p * (v[j] * k[j]);
                s2 += p * k[j];
                col_a[j] += p * a;
                col_b[j] += p * b;
                dv[j] += p * gi;
            }
            dq[i] = scale * gi * (s1 - yi * s2);
        }
        for j in 0..n {
            dk[j] = v[j] * col_a[j] - col_b[j];
        }
    }

    /// Each row of `p` (`n` base-2 scores `s`) becomes the softmax's numerators `2^(s - max)`,
    /// not yet divided by their sum `l` (the caller scales the `dv` outputs of each row by
    /// `1 / l` instead of the `n` weights); `lse` gets each row's log-sum-exp in natural units,
    /// `inv_sum` its `1 / l`.
    pub fn softmax_rows(p: &mut [f32], n: usize, lse: &mut [f32], inv_sum: &mut [f32]) {
        for ((row, lse), inv) in p
            .chunks_exact_mut(n)
            .zip(lse.iter_mut())
            .zip(inv_sum.iter_mut())
        {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut l = 0f32;
            for s in row.iter_mut() {
                *s = exp2(*s - m);
                l += *s;
            }
            *inv = 1.0 / l;
            *lse = (m + l.log2()) * LN2;
        }
    }

    /// The softmax's backward on a block of rows, in one pass: row `i` of `p` (`n` base-2
    /// scores on entry) becomes the softmax `P = 2^(s - lse_i log2 e)`, and row `i` of `ds`
    /// (`dP` on entry) becomes `dS = scale * P * (dP - d_i)`.
    pub fn softmax_grad_rows(
        p: &mut [f32],
        ds: &mut [f32],
        n: usize,
        lse: &[f32],
        d: &[f32],
        scale: f32,
    ) {
        for (((row, grad), &l), &di) in p
            .chunks_exact_mut(n)
            .zip(ds.chunks_exact_mut(n))
            .zip(lse)
            .zip(d)
        {
            let l2 = l * LOG2E;
            for (s, g) in row.iter_mut().zip(grad.iter_mut()) {
                *s = exp2(*s - l2);
                *g = scale * *s * (*g - di);
            }
        }
    }
}

/// AVX2+FMA kernels: 8 lanes of `f32`, the same computations as [`portable`]. Callers must check
/// [`Simd::avx2`].
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::portable::{exp2 as exp2_1, min_max};
    use super::{EXP2_MAX, EXP2_MIN, EXP2_POLY, LN2, LOG2E, ROUND};

    const LANES: usize = 8;

    /// [`super::portable::exp2`] on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp2(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(EXP2_MIN)),
            _mm256_set1_ps(EXP2_MAX),
        );
        let round = _mm256_set1_ps(ROUND);
        let t = _mm256_add_ps(x, round);
        let r = _mm256_sub_ps(x, _mm256_sub_ps(t, round));
        let mut p = _mm256_set1_ps(EXP2_POLY[0]);
        for &c in &EXP2_POLY[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
        let n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(round));
        let pow2n = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
        _mm256_mul_ps(e, _mm256_castsi256_ps(pow2n))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sum(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn max(x: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
    }

    /// The 8 floats of an 8-float chunk.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(chunk: &[f32]) -> __m256 {
        assert_eq!(chunk.len(), LANES);
        // SAFETY: `chunk` holds 8 floats.
        unsafe { _mm256_loadu_ps(chunk.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store(chunk: &mut [f32], x: __m256) {
        assert_eq!(chunk.len(), LANES);
        // SAFETY: `chunk` holds 8 floats.
        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), x) }
    }

    /// [`super::portable::outer_forward`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx2,fma")]
    pub fn outer_forward(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f32,
        y: &mut [f32],
        lse: &mut [f32],
    ) {
        let n = k.len();
        let body = n - n % LANES;
        let (k_min, k_max) = min_max(k);
        for i in 0..n {
            let qi = q[i] * scale * LOG2E; // base-2 scores q_i k_j
            let m = if qi >= 0.0 { qi * k_max } else { qi * k_min }; // the row's largest score
            let (qv, mv) = (_mm256_set1_ps(qi), _mm256_set1_ps(m));
            let (mut l, mut o) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for (kc, vc) in k[..body]
                .chunks_exact(LANES)
                .zip(v[..body].chunks_exact(LANES))
            {
                let e = exp2(_mm256_fmsub_ps(qv, load(kc), mv));
                l = _mm256_add_ps(l, e);
                o = _mm256_fmadd_ps(e, load(vc), o);
            }
            let (mut l, mut o) = (sum(l), sum(o));
            for j in body..n {
                let e = exp2_1(qi * k[j] - m);
                l += e;
                o += e * v[j];
            }
            y[i] = o / l;
            lse[i] = (m + l.log2()) * LN2;
        }
    }

    /// [`super::portable::outer_backward`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA: callers check at run time (`ops::simd`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub fn outer_backward(
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
        let n = k.len();
        let body = n - n % LANES;
        let vk: Vec<f32> = v.iter().zip(k).map(|(v, k)| v * k).collect();
        let mut col_a = vec![0f32; n];
        let mut col_b = vec![0f32; n];
        dv.fill(0.0);
        for i in 0..n {
            let (qi, gi, yi) = (q[i] * scale, dy[i], y[i]);
            let (q2, l2) = (qi * LOG2E, lse[i] * LOG2E);
            let (a, b) = (gi * qi, gi * yi * qi);
            let (qv, lv) = (_mm256_set1_ps(q2), _mm256_set1_ps(l2));
            let (av, bv, gv) = (_mm256_set1_ps(a), _mm256_set1_ps(b), _mm256_set1_ps(gi));
            let (mut s1, mut s2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let columns = col_a[..body]
                .chunks_exact_mut(LANES)
                .zip(col_b[..body].chunks_exact_mut(LANES))
                .zip(dv[..body].chunks_exact_mut(LANES));
            for ((((kc, vkc), ca), cb), cg) in k[..body]
                .chunks_exact(LANES)
                .zip(vk[..body].chunks_exact(LANES))
                .zip(columns)
                .map(|((k, vk), ((a, b), g))| ((((k, vk), a), b), g))
            {
                let kc = load(kc);
                let p = exp2(_mm256_fmsub_ps(qv, kc, lv));
                s1 = _mm256_fmadd_ps(p, load(vkc), s1);
                s2 = _mm256_fmadd_ps(p, kc, s2);
                store(ca, _mm256_fmadd_ps(p, av, load(ca)));
                store(cb, _mm256_fmadd_ps(p, bv, load(cb)));
                store(cg, _mm256_fmadd_ps(p, gv, load(cg)));
            }
            let (mut s1, mut s2) = (sum(s1), sum(s2));
            for j in body..n {
                let p = exp2_1(q2 * k[j] - l2);
                s1 += p * vk[j];
                s2 += p * k[j];
                col_a[j] += p * a;
                col_b[j] += p * b;
                dv[j] += p * gi;
            }
            dq[i] = scale * gi * (s1 - yi * s2);
        }
        for j in 0..n {
            dk[j] = v[j] * col_a[j] - col_b[j];
        }
    }

    /// `p [t, n] = alpha * q[:, start..start + t]^T k` for `q`, `k` `[dk, n]` with `dk` at most
    /// 8: per row, the `dk` query values broadcast and 8 keys per multiply-add.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA: callers check at run time (`ops::simd`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub fn thin_scores(
        p: &mut [f32],
        q: &[f32],
        start: usize,
        t: usize,
        k: &[f32],
        dk: usize,
        n: usize,
        alpha: f32,
    ) {
        assert!((1..=8).contains(&dk), "thin scores: dk {dk} outside 1..=8");
        assert!(
            p.len() >= t * n && q.len() >= dk * n && k.len() >= dk * n && start + t <= n,
            "thin scores: slices too short"
        );
        // 4 registers of keys at a time: independent chains of multiply-adds
        const STEP: usize = 4 * LANES;
        let body = n - n % STEP;
        for (i, row) in p[..t * n].chunks_exact_mut(n).enumerate() {
            let qi: [f32; 8] = std::array::from_fn(|d| {
                if d < dk {
                    alpha * q[d * n + start + i]
                } else {
                    0.0
                }
            });
            for j in (0..body).step_by(STEP) {
                // SAFETY: `d * n + j + 32 <= dk * n <= k.len()` for `d < dk`, `j + 32 <= body <= n`.
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); 4];
                    for (d, &qd) in qi.iter().enumerate().take(dk) {
                        let (qd, keys) = (_mm256_set1_ps(qd), k.as_ptr().add(d * n + j));
                        for (a, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_fmadd_ps(qd, _mm256_loadu_ps(keys.add(a * LANES)), *acc);
                        }
                    }
                    for (a, acc) in acc.into_iter().enumerate() {
                        _mm256_storeu_ps(row.as_mut_ptr().add(j + a * LANES), acc);
                    }
                }
            }
            for (j, value) in row.iter_mut().enumerate().skip(body) {
                *value = (0..dk).fold(0.0, |acc, d| qi[d].mul_add(k[d * n + j], acc));
            }
        }
    }

    /// [`super::portable::softmax_rows`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx2,fma")]
    pub fn softmax_rows(p: &mut [f32], n: usize, lse: &mut [f32], inv_sum: &mut [f32]) {
        let body = n - n % LANES;
        for ((row, lse), inv) in p
            .chunks_exact_mut(n)
            .zip(lse.iter_mut())
            .zip(inv_sum.iter_mut())
        {
            let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
            for c in row[..body].chunks_exact(LANES) {
                mv = _mm256_max_ps(mv, load(c));
            }
            let m = row[body..].iter().fold(max(mv), |m, &s| m.max(s));
            let mv = _mm256_set1_ps(m);
            let mut lv = _mm256_setzero_ps();
            for c in row[..body].chunks_exact_mut(LANES) {
                let e = exp2(_mm256_sub_ps(load(c), mv));
                store(c, e);
                lv = _mm256_add_ps(lv, e);
            }
            let mut l = sum(lv);
            for s in &mut row[body..] {
                *s = exp2_1(*s - m);
                l += *s;
            }
            *inv = 1.0 / l;
            *lse = (m + l.log2()) * LN2;
        }
    }

    /// [`super::portable::softmax_grad_rows`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx2,fma")]
    pub fn softmax_grad_rows(
        p: &mut [f32],
        ds: &mut [f32],
        n: usize,
        lse: &[f32],
        d: &[f32],
        scale: f32,
    ) {
        let body = n - n % LANES;
        let sv = _mm256_set1_ps(scale);
        for (((row, grad), &l), &di) in p
            .chunks_exact_mut(n)
            .zip(ds.chunks_exact_mut(n))
            .zip(lse)
            .zip(d)
        {
            let l2 = l * LOG2E;
            let (lv, dv) = (_mm256_set1_ps(l2), _mm256_set1_ps(di));
            for (c, g) in row[..body]
                .chunks_exact_mut(LANES)
                .zip(grad[..body].chunks_exact_mut(LANES))
            {
                let e = exp2(_mm256_sub_ps(load(c), lv));
                store(c, e);
                store(
                    g,
                    _mm256_mul_ps(_mm256_mul_ps(sv, e), _mm256_sub_ps(load(g), dv)),
                );
            }
            for (s, g) in row[body..].iter_mut().zip(&mut grad[body..]) {
                *s = exp2_1(*s - l2);
                *g = scale * *s * (*g - di);
            }
        }
    }
}

/// AVX-512 kernels: 16 lanes of `f32`, the same computations as [`avx2`] (and [`portable`]).
/// Callers must check that the CPU has AVX-512 F ([`Simd::Avx512`]).
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use std::arch::x86_64::*;

    use super::portable::{exp2 as exp2_1, min_max};
    use super::{EXP2_MAX, EXP2_MIN, EXP2_POLY, LN2, LOG2E, ROUND};

    const LANES: usize = 16;

    /// [`super::portable::exp2`] on 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp2(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(EXP2_MIN)),
            _mm512_set1_ps(EXP2_MAX),
        );
        let round = _mm512_set1_ps(ROUND);
        let t = _mm512_add_ps(x, round);
        let r = _mm512_sub_ps(x, _mm512_sub_ps(t, round));
        let mut p = _mm512_set1_ps(EXP2_POLY[0]);
        for &c in &EXP2_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let e = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
        let n = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(round));
        let pow2n = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
        _mm512_mul_ps(e, _mm512_castsi512_ps(pow2n))
    }

    /// The 16 floats of a 16-float chunk.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(chunk: &[f32]) -> __m512 {
        assert_eq!(chunk.len(), LANES);
        // SAFETY: `chunk` holds 16 floats.
        unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(chunk: &mut [f32], x: __m512) {
        assert_eq!(chunk.len(), LANES);
        // SAFETY: `chunk` holds 16 floats.
        unsafe { _mm512_storeu_ps(chunk.as_mut_ptr(), x) }
    }

    /// [`super::portable::outer_forward`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx512f")]
    pub fn outer_forward(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f32,
        y: &mut [f32],
        lse: &mut [f32],
    ) {
        let n = k.len();
        let body = n - n % LANES;
        let (k_min, k_max) = min_max(k);
        for i in 0..n {
            let qi = q[i] * scale * LOG2E; // base-2 scores q_i k_j
            let m = if qi >= 0.0 { qi * k_max } else { qi * k_min }; // the row's largest score
            let (qv, mv) = (_mm512_set1_ps(qi), _mm512_set1_ps(m));
            let (mut l, mut o) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for (kc, vc) in k[..body]
                .chunks_exact(LANES)
                .zip(v[..body].chunks_exact(LANES))
            {
                let e = exp2(_mm512_fmsub_ps(qv, load(kc), mv));
                l = _mm512_add_ps(l, e);
                o = _mm512_fmadd_ps(e, load(vc), o);
            }
            let (mut l, mut o) = (_mm512_reduce_add_ps(l), _mm512_reduce_add_ps(o));
            for j in body..n {
                let e = exp2_1(qi * k[j] - m);
                l += e;
                o += e * v[j];
            }
            y[i] = o / l;
            lse[i] = (m + l.log2()) * LN2;
        }
    }

    /// [`super::portable::outer_backward`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F: callers check at run time (`ops::simd`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub fn outer_backward(
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
        let n = k.len();
        let body = n - n % LANES;
        let vk: Vec<f32> = v.iter().zip(k).map(|(v, k)| v * k).collect();
        let mut col_a = vec![0f32; n];
        let mut col_b = vec![0f32; n];
        dv.fill(0.0);
        for i in 0..n {
            let (qi, gi, yi) = (q[i] * scale, dy[i], y[i]);
            let (q2, l2) = (qi * LOG2E, lse[i] * LOG2E);
            let (a, b) = (gi * qi, gi * yi * qi);
            let (qv, lv) = (_mm512_set1_ps(q2), _mm512_set1_ps(l2));
            let (av, bv, gv) = (_mm512_set1_ps(a), _mm512_set1_ps(b), _mm512_set1_ps(gi));
            let (mut s1, mut s2) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let columns = col_a[..body]
                .chunks_exact_mut(LANES)
                .zip(col_b[..body].chunks_exact_mut(LANES))
                .zip(dv[..body].chunks_exact_mut(LANES));
            for ((((kc, vkc), ca), cb), cg) in k[..body]
                .chunks_exact(LANES)
                .zip(vk[..body].chunks_exact(LANES))
                .zip(columns)
                .map(|((k, vk), ((a, b), g))| ((((k, vk), a), b), g))
            {
                let kc = load(kc);
                let p = exp2(_mm512_fmsub_ps(qv, kc, lv));
                s1 = _mm512_fmadd_ps(p, load(vkc), s1);
                s2 = _mm512_fmadd_ps(p, kc, s2);
                store(ca, _mm512_fmadd_ps(p, av, load(ca)));
                store(cb, _mm512_fmadd_ps(p, bv, load(cb)));
                store(cg, _mm512_fmadd_ps(p, gv, load(cg)));
            }
            let (mut s1, mut s2) = (_mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2));
            for j in body..n {
                let p = exp2_1(q2 * k[j] - l2);
                s1 += p * vk[j];
                s2 += p * k[j];
                col_a[j] += p * a;
                col_b[j] += p * b;
                dv[j] += p * gi;
            }
            dq[i] = scale * gi * (s1 - yi * s2);
        }
        for j in 0..n {
            dk[j] = v[j] * col_a[j] - col_b[j];
        }
    }

    /// [`super::avx2::thin_scores`] on 16 lanes: per row, the `dk` (at most 8) query values
    /// broadcast and 16 keys per multiply-add, 4 registers at a time, then one at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512F: callers check at run time (`ops::simd`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub fn thin_scores(
        p: &mut [f32],
        q: &[f32],
        start: usize,
        t: usize,
        k: &[f32],
        dk: usize,
        n: usize,
        alpha: f32,
    ) {
        assert!((1..=8).contains(&dk), "thin scores: dk {dk} outside 1..=8");
        assert!(
            p.len() >= t * n && q.len() >= dk * n && k.len() >= dk * n && start + t <= n,
            "thin scores: slices too short"
        );
        const STEP: usize = 4 * LANES;
        let (wide, body) = (n - n % STEP, n - n % LANES);
        for (i, row) in p[..t * n].chunks_exact_mut(n).enumerate() {
            let qi: [f32; 8] = std::array::from_fn(|d| {
                if d < dk {
                    alpha * q[d * n + start + i]
                } else {
                    0.0
                }
            });
            for j in (0..wide).step_by(STEP) {
                // SAFETY: `d * n + j + 64 <= dk * n <= k.len()` for `d < dk`, `j + 64 <= wide <= n`.
                unsafe {
                    let mut acc = [_mm512_setzero_ps(); 4];
                    for (d, &qd) in qi.iter().enumerate().take(dk) {
                        let (qd, keys) = (_mm512_set1_ps(qd), k.as_ptr().add(d * n + j));
                        for (a, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(qd, _mm512_loadu_ps(keys.add(a * LANES)), *acc);
                        }
                    }
                    for (a, acc) in acc.into_iter().enumerate() {
                        _mm512_storeu_ps(row.as_mut_ptr().add(j + a * LANES), acc);
                    }
                }
            }
            for j in (wide..body).step_by(LANES) {
                // SAFETY: `d * n + j + 16 <= dk * n` for `d < dk`, `j + 16 <= body <= n`.
                unsafe {
                    let mut acc = _mm512_setzero_ps();
                    for (d, &qd) in qi.iter().enumerate().take(dk) {
                        acc = _mm512_fmadd_ps(
                            _mm512_set1_ps(qd),
                            _mm512_loadu_ps(k.as_ptr().add(d * n + j)),
                            acc,
                        );
                    }
                    _mm512_storeu_ps(row.as_mut_ptr().add(j), acc);
                }
            }
            for (j, value) in row.iter_mut().enumerate().skip(body) {
                *value = (0..dk).fold(0.0, |acc, d| qi[d].mul_add(k[d * n + j], acc));
            }
        }
    }

    /// [`super::portable::softmax_rows`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx512f")]
    pub fn softmax_rows(p: &mut [f32], n: usize, lse: &mut [f32], inv_sum: &mut [f32]) {
        let body = n - n % LANES;
        for ((row, lse), inv) in p
            .chunks_exact_mut(n)
            .zip(lse.iter_mut())
            .zip(inv_sum.iter_mut())
        {
            let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
            for c in row[..body].chunks_exact(LANES) {
                mv = _mm512_max_ps(mv, load(c));
            }
            let m = row[body..]
                .iter()
                .fold(_mm512_reduce_max_ps(mv), |m, &s| m.max(s));
            let mv = _mm512_set1_ps(m);
            let mut lv = _mm512_setzero_ps();
            for c in row[..body].chunks_exact_mut(LANES) {
                let e = exp2(_mm512_sub_ps(load(c), mv));
                store(c, e);
                lv = _mm512_add_ps(lv, e);
            }
            let mut l = _mm512_reduce_add_ps(lv);
            for s in &mut row[body..] {
                *s = exp2_1(*s - m);
                l += *s;
            }
            *inv = 1.0 / l;
            *lse = (m + l.log2()) * LN2;
        }
    }

    /// [`super::portable::softmax_grad_rows`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F: callers check at run time (`ops::simd`).
    #[target_feature(enable = "avx512f")]
    pub fn softmax_grad_rows(
        p: &mut [f32],
        ds: &mut [f32],
        n: usize,
        lse: &[f32],
        d: &[f32],
        scale: f32,
    ) {
        let body = n - n % LANES;
        let sv = _mm512_set1_ps(scale);
        for (((row, grad), &l), &di) in p
            .chunks_exact_mut(n)
            .zip(ds.chunks_exact_mut(n))
            .zip(lse)
            .zip(d)
        {
            let l2 = l * LOG2E;
            let (lv, dv) = (_mm512_set1_ps(l2), _mm512_set1_ps(di));
            for (c, g) in row[..body]
                .chunks_exact_mut(LANES)
                .zip(grad[..body].chunks_exact_mut(LANES))
            {
                let e = exp2(_mm512_sub_ps(load(c), lv));
                store(c, e);
                store(
                    g,
                    _mm512_mul_ps(_mm512_mul_ps(sv, e), _mm512_sub_ps(load(g), dv)),
                );
            }
            for (s, g) in row[body..].iter_mut().zip(&mut grad[body..]) {
                *s = exp2_1(*s - l2);
                *g = scale * *s * (*g - di);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dense kernel: any dk, dv; matrix products through gemm.

/// A matrix view into a slice: element `(r, c)` is `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(super) struct View {
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    pub(super) fn new(offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Whether every element lies in a slice of `len` values.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// `dst = (accumulate ? dst : 0) + alpha * lhs rhs`, single-threaded (groups, or images, are
/// the parallel unit).
#[allow(clippy::too_many_arguments)] // BLAS-style: two operand views, the output's, and the scalings
pub(super) fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    alpha: f32,
) {
    assert!(
        l.rows == d.rows && r.cols == d.cols && l.cols == r.rows,
        "matmul shapes"
    );
    assert!(
        d.fits(dst.len()) && l.fits(lhs.len()) && r.fits(rhs.len()),
        "matmul views out of bounds"
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !accumulate {
            for r_ in 0..d.rows {
                for c in 0..d.cols {
                    dst[d.offset + r_ * d.rs + c * d.cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the views were checked to lie inside their slices; `dst` is borrowed mutably and
    // does not alias `lhs` or `rhs` (distinct borrows).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr().add(d.offset),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr().add(l.offset),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.offset),
            r.cs as isize,
            r.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Heads at most this wide take [`avx2::thin_scores`] (or its AVX-512 form) instead of a matrix product for the
/// scores: a product only `dk` deep (4 at arch 2's first layer) spends more on packing and on
/// writing its output than on multiply-adds.
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
            Simd::Avx512 => return unsafe { avx512::thin_scores(p, q, start, t, k, dk, n, alpha) },
            Simd::Avx2 => return unsafe { avx2::thin_scores(p, q, start, t, k, dk, n, alpha) },
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
