//! The attention kernels on x86-64 vector registers: [`avx2`] (AVX2 + FMA, 8 lanes of `f32`)
//! and [`avx512`] (AVX-512 F, 16 lanes), the same computations as [`portable`](super::portable).
//!
//! Both are generated from one body, [`vector_kernels!`], written against the primitives of
//! `crate::vector` (`splat`, `add`, `fmadd`, `loadu`, ...) and three of each module's own
//! (`pow2`, and the horizontal reductions `sum` and `hmax`, whose orders differ). Callers must
//! check that the CPU has the module's features ([`Simd`](crate::simd::Simd)).

/// The attention kernels for the vector type `V` of the enclosing module, with its `LANES` and
/// primitives in scope; every function gets the target features `$feature` (`# Safety` names
/// them through `$needs`).
macro_rules! vector_kernels {
    ($needs:literal, $(#[$feature:meta])*) => {
        use crate::attention::portable::{exp2 as exp2_1, min_max};
        use crate::attention::{EXP2_MAX, EXP2_MIN, EXP2_POLY, LN2, LOG2E, ROUND};

        /// [`portable::exp2`](crate::attention::portable::exp2) on every lane.
        #[inline]
        $(#[$feature])*
        fn exp2(x: V) -> V {
            let x = min(max(x, splat(EXP2_MIN)), splat(EXP2_MAX));
            let round = splat(ROUND);
            let t = add(x, round);
            let r = sub(x, sub(t, round));
            let mut p = splat(EXP2_POLY[0]);
            for &c in &EXP2_POLY[1..] {
                p = fmadd(p, r, splat(c));
            }
            let e = fmadd(p, r, splat(1.0));
            // 2^n from n, the integer `t`'s low mantissa bits hold: n + 127 shifted into the
            // exponent field
            mul(e, pow2(t, round))
        }

        /// The `LANES` floats of a `LANES`-float chunk.
        #[inline]
        $(#[$feature])*
        fn load(chunk: &[f32]) -> V {
            assert_eq!(chunk.len(), LANES);
            // SAFETY: `chunk` holds `LANES` floats.
            unsafe { loadu(chunk.as_ptr()) }
        }

        #[inline]
        $(#[$feature])*
        fn store(chunk: &mut [f32], x: V) {
            assert_eq!(chunk.len(), LANES);
            // SAFETY: `chunk` holds `LANES` floats.
            unsafe { storeu(chunk.as_mut_ptr(), x) }
        }

        /// [`portable::outer_forward`](crate::attention::portable::outer_forward).
        ///
        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ": callers check at run time")]
        /// ([`Simd`](crate::simd::Simd)).
        $(#[$feature])*
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
                let (qv, mv) = (splat(qi), splat(m));
                let (mut l, mut o) = (zero(), zero());
                for (kc, vc) in k[..body]
                    .chunks_exact(LANES)
                    .zip(v[..body].chunks_exact(LANES))
                {
                    let e = exp2(fmsub(qv, load(kc), mv));
                    l = add(l, e);
                    o = fmadd(e, load(vc), o);
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

        /// [`portable::outer_backward`](crate::attention::portable::outer_backward).
        ///
        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ": callers check at run time")]
        /// ([`Simd`](crate::simd::Simd)).
        #[allow(clippy::too_many_arguments)]
        $(#[$feature])*
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
                let (qv, lv) = (splat(q2), splat(l2));
                let (av, bv, gv) = (splat(a), splat(b), splat(gi));
                let (mut s1, mut s2) = (zero(), zero());
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
                    let p = exp2(fmsub(qv, kc, lv));
                    s1 = fmadd(p, load(vkc), s1);
                    s2 = fmadd(p, kc, s2);
                    store(ca, fmadd(p, av, load(ca)));
                    store(cb, fmadd(p, bv, load(cb)));
                    store(cg, fmadd(p, gv, load(cg)));
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

        /// `p [t, n] = alpha * q[:, start..start + t]^T k` for `q`, `k` `[dk, n]` with `dk` at
        /// most 8: per row, the `dk` query values broadcast and `LANES` keys per multiply-add,
        /// 4 registers at a time, then one at a time.
        ///
        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ": callers check at run time")]
        /// ([`Simd`](crate::simd::Simd)).
        #[allow(clippy::too_many_arguments)]
        $(#[$feature])*
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
                    // SAFETY: `d * n + j + STEP <= dk * n <= k.len()` for `d < dk`,
                    // `j + STEP <= wide <= n`.
                    unsafe {
                        let mut acc = [zero(); 4];
                        for (d, &qd) in qi.iter().enumerate().take(dk) {
                            let (qd, keys) = (splat(qd), k.as_ptr().add(d * n + j));
                            for (a, acc) in acc.iter_mut().enumerate() {
                                *acc = fmadd(qd, loadu(keys.add(a * LANES)), *acc);
                            }
                        }
                        for (a, acc) in acc.into_iter().enumerate() {
                            storeu(row.as_mut_ptr().add(j + a * LANES), acc);
                        }
                    }
                }
                for j in (wide..body).step_by(LANES) {
                    // SAFETY: `d * n + j + LANES <= dk * n` for `d < dk`, `j + LANES <= body <= n`.
                    unsafe {
                        let mut acc = zero();
                        for (d, &qd) in qi.iter().enumerate().take(dk) {
                            acc = fmadd(splat(qd), loadu(k.as_ptr().add(d * n + j)), acc);
                        }
                        storeu(row.as_mut_ptr().add(j), acc);
                    }
                }
                // the same multiply-adds in the same order as a lane's: the same bits
                for (j, value) in row.iter_mut().enumerate().skip(body) {
                    *value = (0..dk).fold(0.0, |acc, d| qi[d].mul_add(k[d * n + j], acc));
                }
            }
        }

        /// [`portable::softmax_rows`](crate::attention::portable::softmax_rows).
        ///
        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ": callers check at run time")]
        /// ([`Simd`](crate::simd::Simd)).
        $(#[$feature])*
        pub fn softmax_rows(p: &mut [f32], n: usize, lse: &mut [f32], inv_sum: &mut [f32]) {
            let body = n - n % LANES;
            for ((row, lse), inv) in p
                .chunks_exact_mut(n)
                .zip(lse.iter_mut())
                .zip(inv_sum.iter_mut())
            {
                let mut mv = splat(f32::NEG_INFINITY);
                for c in row[..body].chunks_exact(LANES) {
                    mv = max(mv, load(c));
                }
                let m = row[body..].iter().fold(hmax(mv), |m, &s| m.max(s));
                let mv = splat(m);
                let mut lv = zero();
                for c in row[..body].chunks_exact_mut(LANES) {
                    let e = exp2(sub(load(c), mv));
                    store(c, e);
                    lv = add(lv, e);
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

        /// [`portable::softmax_grad_rows`](crate::attention::portable::softmax_grad_rows).
        ///
        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ": callers check at run time")]
        /// ([`Simd`](crate::simd::Simd)).
        $(#[$feature])*
        pub fn softmax_grad_rows(
            p: &mut [f32],
            ds: &mut [f32],
            n: usize,
            lse: &[f32],
            d: &[f32],
            scale: f32,
        ) {
            let body = n - n % LANES;
            let sv = splat(scale);
            for (((row, grad), &l), &di) in p
                .chunks_exact_mut(n)
                .zip(ds.chunks_exact_mut(n))
                .zip(lse)
                .zip(d)
            {
                let l2 = l * LOG2E;
                let (lv, dv) = (splat(l2), splat(di));
                for (c, g) in row[..body]
                    .chunks_exact_mut(LANES)
                    .zip(grad[..body].chunks_exact_mut(LANES))
                {
                    let e = exp2(sub(load(c), lv));
                    store(c, e);
                    store(g, mul(mul(sv, e), sub(load(g), dv)));
                }
                for (s, g) in row[body..].iter_mut().zip(&mut grad[body..]) {
                    *s = exp2_1(*s - l2);
                    *g = scale * *s * (*g - di);
                }
            }
        }
    };
}

/// AVX2 + FMA: 8 lanes of `f32`.
pub mod avx2 {
    use std::arch::x86_64::*;

    use crate::vector::avx2::*;

    /// `2^n` for the integer `n` that `t = x + round` holds in its low mantissa bits.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn pow2(t: V, round: V) -> V {
        let n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(round));
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            n,
            _mm256_set1_epi32(127),
        )))
    }
    /// The lanes' sum: halves added pairwise.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sum(x: V) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
    /// The lanes' maximum.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hmax(x: V) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
    }

    vector_kernels!("AVX2 and FMA", #[target_feature(enable = "avx2,fma")]);
}

/// AVX-512 F: 16 lanes of `f32`.
pub mod avx512 {
    use std::arch::x86_64::*;

    use crate::vector::avx512::*;

    /// `2^n` for the integer `n` that `t = x + round` holds in its low mantissa bits.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pow2(t: V, round: V) -> V {
        let n = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(round));
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            n,
            _mm512_set1_epi32(127),
        )))
    }
    /// The lanes' sum.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sum(x: V) -> f32 {
        _mm512_reduce_add_ps(x)
    }
    /// The lanes' maximum.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hmax(x: V) -> f32 {
        _mm512_reduce_max_ps(x)
    }

    vector_kernels!("AVX-512 F", #[target_feature(enable = "avx512f")]);
}
