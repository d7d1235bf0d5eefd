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
//! Only `f32` runs here; other float types take the [`tiled`](super::tiled) path.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;
use rayon::prelude::*;

/// Query rows per block in the dense kernel.
pub const BLOCK_ROWS: usize = 64;

/// Whether these tensors can run on the CPU kernels (all `f32`).
pub fn supports(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

/// A contiguous copy (or the tensor itself when already contiguous).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() { t } else { t.to_contiguous() }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// Groups per rayon task so that each task has at least ~64k score pairs of work.
fn groups_per_task(n: usize) -> usize {
    (65_536 / (n * n).max(1)).max(1)
}

/// Forward: `(y [g, dv, n], lse [g, n])`.
pub fn forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f32) -> (FlexTensor, FlexTensor) {
    let [g, dk, n] = dims3(&q);
    let dv = dims3(&v)[1];
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (qs, ks, vs) = (values(&q), values(&k), values(&v));
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
                outer_forward(q, k, v, scale, y, lse);
            } else {
                dense_forward(q, k, v, dk, dv, n, scale, y, lse);
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
                outer_backward(q, k, v, y, lse, dy, scale, dq, dk_g, dv_g);
            } else {
                dense_backward(q, k, v, y, lse, dy, dk, dv, n, scale, dq, dk_g, dv_g);
            }
        });
    (tensor(dq, vec![g, dk, n]), tensor(dk_out, vec![g, dk, n]), tensor(dv_out, vec![g, dv, n]))
}

// ---------------------------------------------------------------------------------------------
// SIMD helpers. Kernels are written as plain loops over 8-lane arrays that LLVM vectorises; each
// kernel is compiled twice (AVX2+FMA, and the baseline) and picked at run time.

const LANES: usize = 8;

/// Compiles `$body` (an `#[inline(always)]` function) for AVX2+FMA as well as the baseline
/// target and calls the best one the CPU supports.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// `e^x` for `f32` to about 2 ulp (Cephes' `expf` polynomial) in a branch-free form that
/// vectorises. Arguments are clamped to `[-87, 88]`: below, the result is ~1e-38 instead of a
/// smaller number or 0, which no softmax here can tell apart.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND; // round(x / ln 2)
    let r = x - n * LN2_HI - n * LN2_LO; // x - n ln 2, in about [-ln2/2, ln2/2]
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32; // the integer n from t's mantissa
    e * f32::from_bits(((n + 127) << 23) as u32)
}

#[inline(always)]
fn lanes(s: &[f32], c: usize) -> &[f32; LANES] {
    s[c * LANES..(c + 1) * LANES].try_into().expect("8 lanes")
}

#[inline(always)]
fn lanes_mut(s: &mut [f32], c: usize) -> &mut [f32; LANES] {
    (&mut s[c * LANES..(c + 1) * LANES]).try_into().expect("8 lanes")
}

#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

// ---------------------------------------------------------------------------------------------
// Outer kernel: dk = dv = 1.

multiversion!(fn outer_forward(q: &[f32], k: &[f32], v: &[f32], scale: f32, y: &mut [f32], lse: &mut [f32]) => outer_forward_body);

#[inline(always)]
fn outer_forward_body(q: &[f32], k: &[f32], v: &[f32], scale: f32, y: &mut [f32], lse: &mut [f32]) {
    let n = k.len();
    let chunks = n / LANES;
    let (k_min, k_max) = min_max(k);
    for i in 0..n {
        let qi = q[i] * scale;
        let m = if qi >= 0.0 { qi * k_max } else { qi * k_min }; // the row's largest score
        let mut l = [0f32; LANES];
        let mut o = [0f32; LANES];
        for c in 0..chunks {
            let (kc, vc) = (lanes(k, c), lanes(v, c));
            for x in 0..LANES {
                let e = exp(qi * kc[x] - m);
                l[x] += e;
                o[x] += e * vc[x];
            }
        }
        let mut l: f32 = l.iter().sum();
        let mut o: f32 = o.iter().sum();
        for j in chunks * LANES..n {
            let e = exp(qi * k[j] - m);
            l += e;
            o += e * v[j];
        }
        y[i] = o / l;
        lse[i] = m + l.ln();
    }
}

multiversion!(
    #[allow(clippy::too_many_arguments)]
    fn outer_backward(q: &[f32], k: &[f32], v: &[f32], y: &[f32], lse: &[f32], dy: &[f32], scale: f32,
                      dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) => outer_backward_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn outer_backward_body(
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
    let chunks = n / LANES;
    let vk: Vec<f32> = v.iter().zip(k).map(|(v, k)| v * k).collect();
    // Column sums over query rows i: sum_i P_ij dy_i q'_i (-> dk), sum_i P_ij dy_i y_i q'_i
    // (-> dk), sum_i P_ij dy_i (= dv).
    let mut col_a = vec![0f32; n];
    let mut col_b = vec![0f32; n];
    dv.fill(0.0);
    for i in 0..n {
        let (qi, gi, yi, li) = (q[i] * scale, dy[i], y[i], lse[i]);
        let (a, b) = (gi * qi, gi * yi * qi);
        let mut s1 = [0f32; LANES]; // sum_j P_ij v_j k_j
        let mut s2 = [0f32; LANES]; // sum_j P_ij k_j
        for c in 0..chunks {
            let (kc, vkc) = (lanes(k, c), lanes(&vk, c));
            let mut p = [0f32; LANES];
            for x in 0..LANES {
                p[x] = exp(qi * kc[x] - li);
                s1[x] += p[x] * vkc[x];
                s2[x] += p[x] * kc[x];
            }
            let (ca, cb, cg) = (lanes_mut(&mut col_a, c), lanes_mut(&mut col_b, c), lanes_mut(dv, c));
            for x in 0..LANES {
                ca[x] += p[x] * a;
                cb[x] += p[x] * b;
                cg[x] += p[x] * gi;
            }
        }
        let mut s1: f32 = s1.iter().sum();
        let mut s2: f32 = s2.iter().sum();
        for j in chunks * LANES..n {
            let p = exp(qi * k[j] - li);
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

// ---------------------------------------------------------------------------------------------
// Dense kernel: any dk, dv; matrix products through gemm.

/// A matrix view into a slice: element `(r, c)` is `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct View {
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    fn new(offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self { offset, rows, cols, rs, cs }
    }

    /// Whether every element lies in a slice of `len` values.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0 || self.cols == 0 || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// `dst = (accumulate ? dst : 0) + alpha * lhs rhs`, single-threaded (groups are the parallel
/// unit).
fn matmul(dst: &mut [f32], d: View, accumulate: bool, lhs: &[f32], l: View, rhs: &[f32], r: View, alpha: f32) {
    assert!(l.rows == d.rows && r.cols == d.cols && l.cols == r.rows, "matmul shapes");
    assert!(d.fits(dst.len()) && l.fits(lhs.len()) && r.fits(rhs.len()), "matmul views out of bounds");
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

multiversion!(fn softmax_rows(p: &mut [f32], n: usize, lse: &mut [f32]) => softmax_rows_body);

/// Each row of `p` (`n` scores) becomes its softmax; `lse` gets each row's log-sum-exp.
#[inline(always)]
fn softmax_rows_body(p: &mut [f32], n: usize, lse: &mut [f32]) {
    for (row, lse) in p.chunks_exact_mut(n).zip(lse.iter_mut()) {
        let m = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut l = [0f32; LANES];
        let chunks = n / LANES;
        for c in 0..chunks {
            let rc = lanes_mut(row, c);
            for x in 0..LANES {
                rc[x] = exp(rc[x] - m);
                l[x] += rc[x];
            }
        }
        let mut l: f32 = l.iter().sum();
        for s in &mut row[chunks * LANES..] {
            *s = exp(*s - m);
            l += *s;
        }
        let inv = 1.0 / l;
        row.iter_mut().for_each(|s| *s *= inv);
        *lse = m + l.ln();
    }
}

multiversion!(fn exp_rows(p: &mut [f32], n: usize, lse: &[f32]) => exp_rows_body);

/// Each row `i` of `p` (`n` scores) becomes `exp(s - lse_i)`: the softmax, given `lse`.
#[inline(always)]
fn exp_rows_body(p: &mut [f32], n: usize, lse: &[f32]) {
    for (row, &l) in p.chunks_exact_mut(n).zip(lse) {
        for s in row.iter_mut() {
            *s = exp(*s - l);
        }
    }
}

multiversion!(fn softmax_grad_rows(ds: &mut [f32], p: &[f32], n: usize, d: &[f32], scale: f32) => softmax_grad_rows_body);

/// `ds = scale * p * (ds - d_i)` row by row (`ds` holds `dP` on entry).
#[inline(always)]
fn softmax_grad_rows_body(ds: &mut [f32], p: &[f32], n: usize, d: &[f32], scale: f32) {
    for ((ds, p), &di) in ds.chunks_exact_mut(n).zip(p.chunks_exact(n)).zip(d) {
        for (s, &pv) in ds.iter_mut().zip(p) {
            *s = scale * pv * (*s - di);
        }
    }
}

/// Dense forward of one group: `q`, `k` `[dk, n]`, `v` `[dv, n]` -> `y` `[dv, n]`, `lse` `[n]`.
#[allow(clippy::too_many_arguments)]
fn dense_forward(q: &[f32], k: &[f32], v: &[f32], dk: usize, dv: usize, n: usize, scale: f32, y: &mut [f32], lse: &mut [f32]) {
    let mut p = vec![0f32; BLOCK_ROWS.min(n) * n];
    for start in (0..n).step_by(BLOCK_ROWS) {
        let t = BLOCK_ROWS.min(n - start);
        let p = &mut p[..t * n];
        // P = scale * q_t^T k: [t, n]
        matmul(p, View::new(0, t, n, n, 1), false, q, View::new(start, t, dk, 1, n), k, View::new(0, dk, n, n, 1), scale);
        softmax_rows(p, n, &mut lse[start..start + t]);
        // y[:, block] = v P^T: [dv, t]
        matmul(y, View::new(start, dv, t, n, 1), false, v, View::new(0, dv, n, n, 1), p, View::new(0, n, t, 1, n), 1.0);
    }
}

/// Dense backward of one group.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
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
        for ((d, &g), &o) in d.iter_mut().zip(&dy[c * n..(c + 1) * n]).zip(&y[c * n..(c + 1) * n]) {
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
        // P = exp(scale * q_t^T k - lse)
        matmul(p, block, false, q, View::new(start, t, dk, 1, n), k, View::new(0, dk, n, n, 1), scale);
        exp_rows(p, n, &lse[start..start + t]);
        // dP = dy_t^T v: [t, n], then dS = scale * P * (dP - D)
        matmul(ds, block, false, dy, View::new(start, t, dv, 1, n), v, View::new(0, dv, n, n, 1), 1.0);
        softmax_grad_rows(ds, p, n, &d[start..start + t], scale);
        // dq[:, block] = k dS^T: [dk, t]
        matmul(dq_out, View::new(start, dk, t, n, 1), false, k, View::new(0, dk, n, n, 1), ds, View::new(0, n, t, 1, n), 1.0);
        // dk += q_t dS: [dk, n]
        matmul(dk_out, View::new(0, dk, n, n, 1), true, q, View::new(start, dk, t, n, 1), ds, block, 1.0);
        // dv += dy_t P: [dv, n]
        matmul(dv_out, View::new(0, dv, n, n, 1), true, dy, View::new(start, dv, t, n, 1), p, block, 1.0);
    }
}
