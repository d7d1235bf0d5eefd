//! Portable kernels (any CPU), the scalar form of the vector ones ([`avx`](super::avx)). Slices
//! are one group's: `q`, `k`, `v`, `y`, `lse`, `dy` all `[n]` in the outer kernel; `p` is a block
//! of rows of `n` scores (base 2) in the row kernels.

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
pub fn outer_forward(q: &[f32], k: &[f32], v: &[f32], scale: f32, y: &mut [f32], lse: &mut [f32]) {
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
