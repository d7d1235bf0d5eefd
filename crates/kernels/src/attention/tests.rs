//! Every SIMD path of the attention kernels against the portable one, and the portable
//! exponential against the standard library's.

use super::portable;
use crate::simd::{Simd, report_paths};

/// Deterministic values in `[-amp, amp]` (a 64-bit LCG, as visionnet's tests draw them).
fn values(len: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

#[test]
fn the_portable_exp2_is_accurate() {
    for i in -4000..=4000 {
        let x = i as f32 * 0.025; // [-100, 100]
        let (got, want) = (portable::exp2(x), x.exp2());
        assert!((got - want).abs() <= 4e-7 * want, "2^{x}: {got} vs {want}");
    }
}

#[test]
fn every_simd_path_agrees_with_the_portable_kernels() {
    // The op runs the best kernels the CPU has (tested against the naive reference above); here
    // every path this CPU can run (AVX-512, AVX2, which other CPUs take) is held against the
    // portable kernels. Sizes around the 16- and 8-lane registers: tails after each.
    for simd in report_paths("attention kernels") {
        for n in [1, 7, 8, 15, 16, 17, 37, 64, 100, 256] {
            let (q, k, v, dy) = (
                values(n, 1, 3.0),
                values(n, 2, 3.0),
                values(n, 3, 1.0),
                values(n, 4, 1.0),
            );
            let close = |a: &[f32], b: &[f32]| {
                let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
                a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 2e-6 * scale)
            };
            let (mut y1, mut l1, mut y2, mut l2) =
                (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            portable::outer_forward(&q, &k, &v, 0.7, &mut y1, &mut l1);
            super::outer_forward(simd, &q, &k, &v, 0.7, &mut y2, &mut l2);
            assert!(
                close(&y1, &y2) && close(&l1, &l2),
                "{simd:?} outer forward, n = {n}"
            );
            let mut g1 = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
            let mut g2 = g1.clone();
            let [a, b, c] = &mut g1;
            portable::outer_backward(&q, &k, &v, &y1, &l1, &dy, 0.7, a, b, c);
            let [a, b, c] = &mut g2;
            super::outer_backward(simd, &q, &k, &v, &y1, &l1, &dy, 0.7, a, b, c);
            for (x, y) in g1.iter().zip(&g2) {
                assert!(close(x, y), "{simd:?} outer backward, n = {n}");
            }
            // Row kernels on 3 rows of n base-2 scores.
            let scores = values(3 * n, 5, 20.0);
            let (mut p1, mut p2) = (scores.clone(), scores.clone());
            let (mut s1, mut s2, mut i1, mut i2) =
                (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
            portable::softmax_rows(&mut p1, n, &mut s1, &mut i1);
            super::softmax_rows(simd, &mut p2, n, &mut s2, &mut i2);
            assert!(
                close(&p1, &p2) && close(&s1, &s2) && close(&i1, &i2),
                "{simd:?} softmax rows, n = {n}"
            );
            // the numerators over their sum: each row of the softmax sums to 1
            let softmax: Vec<f32> = p1
                .chunks(n)
                .zip(&i1)
                .flat_map(|(row, &inv)| row.iter().map(move |e| e * inv))
                .collect();
            for row in softmax.chunks(n) {
                assert!(
                    (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                    "softmax rows sum to 1, n = {n}"
                );
            }
            // the backward pass's rows: P from the forward's lse, dS = scale * P * (dP - d)
            let dp = values(3 * n, 6, 1.0);
            let d = values(3, 7, 1.0);
            let (mut e1, mut e2, mut g1, mut g2) = (scores.clone(), scores, dp.clone(), dp.clone());
            portable::softmax_grad_rows(&mut e1, &mut g1, n, &s1, &d, 0.7);
            super::softmax_grad_rows(simd, &mut e2, &mut g2, n, &s1, &d, 0.7);
            assert!(
                close(&e1, &e2) && close(&g1, &g2),
                "{simd:?} softmax grad rows, n = {n}"
            );
            assert!(
                close(&e1, &softmax),
                "P from the forward's lse is the softmax, n = {n}"
            );
            let want: Vec<f32> = (0..3 * n)
                .map(|i| 0.7 * softmax[i] * (dp[i] - d[i / n]))
                .collect();
            assert!(close(&g1, &want), "dS = scale * P * (dP - d), n = {n}");
            // the scores of thin heads (dk <= 8: broadcast multiply-adds) and a wider one (dk 12:
            // a matrix product on every path), a block of 5 rows from row 1
            for dk in [1, 4, 8, 12] {
                if n < 6 {
                    break;
                }
                let (q, k) = (values(dk * n, 8, 1.0), values(dk * n, 9, 1.0));
                let (mut p1, mut p2) = (vec![0.0; 5 * n], vec![0.0; 5 * n]);
                super::scores(Simd::Portable, &mut p1, &q, 1, 5, &k, dk, n, 0.3);
                super::scores(simd, &mut p2, &q, 1, 5, &k, dk, n, 0.3);
                let want: Vec<f32> = (0..5 * n)
                    .map(|e| {
                        (0..dk)
                            .map(|d| 0.3 * q[d * n + 1 + e / n] * k[d * n + e % n])
                            .sum()
                    })
                    .collect();
                assert!(
                    close(&p1, &p2) && close(&p1, &want),
                    "{simd:?} scores, dk = {dk}, n = {n}"
                );
            }
        }
    }
}
