//! A test of two models that respects how their runs were made: the exact sign-flip
//! permutation test over seeds.
//!
//! Why this one. Each seed gives one pair of runs (the model and its twin trained with that
//! seed), and each pair one accuracy difference `d_s`. Pooling McNemar's discordant counts over
//! every (seed, image) cell treats a test image seen under three seeds as three independent
//! observations, and its p-value sees only the test images' chance, not the seeds'. Combining
//! per-seed McNemar tables by Cochran-Mantel-Haenszel does not help: for matched pairs the CMH
//! statistic over seed strata is `(Σ b_s - Σ c_s)^2 / Σ (b_s + c_s)`, the pooled McNemar statistic
//! again, so it keeps the same flaw. The seeds are the replicates, so the test works on the
//! `d_s`: under the null hypothesis that the model and its twin are exchangeable, each `d_s` is
//! as likely to have either sign, and the p-value is the share of the `2^n` sign patterns whose
//! mean difference is at least as far from 0 as the observed one. It is exact, assumes no
//! normality, and says honestly what few seeds can show: with 3 seeds the smallest attainable
//! two-sided p-value is 2/8 = 0.25.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeds up to which every sign pattern is enumerated; above, patterns are drawn at random.
pub const EXACT_UP_TO: usize = 20;
/// Random sign patterns drawn above [`EXACT_UP_TO`] seeds.
pub const DRAWS: usize = 1 << 16;

/// The sign-flip test of per-seed differences.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SignFlip {
    /// Seeds (pairs of runs).
    pub seeds: usize,
    /// Mean of the differences.
    pub mean: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The smallest p-value this many seeds can give (`2 / 2^n` when exact).
    pub min_p_value: f64,
    /// Whether every sign pattern was enumerated.
    pub exact: bool,
}

/// The two-sided sign-flip permutation test of `differences` (one per seed; any unit).
///
/// # Panics
/// If `differences` is empty.
pub fn sign_flip(differences: &[f64]) -> SignFlip {
    assert!(!differences.is_empty(), "at least one seed");
    let n = differences.len();
    let observed = differences.iter().sum::<f64>().abs();
    // Sums equal up to rounding count as ties (sums of the same values in another order).
    let scale = differences.iter().map(|d| d.abs()).sum::<f64>();
    let at_least = |sum: f64| sum.abs() >= observed - 1e-12 * scale.max(1e-300);
    let mean = differences.iter().sum::<f64>() / n as f64;
    if n <= EXACT_UP_TO {
        let patterns = 1u64 << n;
        let extreme = (0..patterns)
            .filter(|bits| {
                let sum: f64 = differences
                    .iter()
                    .enumerate()
                    .map(|(i, d)| if bits >> i & 1 == 1 { -d } else { *d })
                    .sum();
                at_least(sum)
            })
            .count();
        let min = if differences.iter().all(|d| *d == 0.0) {
            1.0
        } else {
            2.0 / patterns as f64
        };
        return SignFlip {
            seeds: n,
            mean,
            p_value: extreme as f64 / patterns as f64,
            min_p_value: min,
            exact: true,
        };
    }
    // Monte Carlo with the observed pattern counted in, (1 + hits) / (1 + draws), so the
    // p-value is never 0; seeded, so a report is reproducible.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let hits = (0..DRAWS)
        .filter(|_| {
            let sum: f64 = differences
                .iter()
                .map(|d| if rng.random_bool(0.5) { -d } else { *d })
                .sum();
            at_least(sum)
        })
        .count();
    SignFlip {
        seeds: n,
        mean,
        p_value: (1 + hits) as f64 / (1 + DRAWS) as f64,
        min_p_value: 1.0 / (1 + DRAWS) as f64,
        exact: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known values: scipy 1.17, scripts/stats_known_values.py:
    // permutation_test((d, zeros), mean difference, permutation_type='samples',
    // n_resamples=inf, alternative='two-sided').pvalue
    #[test]
    fn matches_scipy_permutation_test() {
        for (d, want) in KNOWN_SIGN_FLIP {
            let got = sign_flip(d);
            assert!(got.exact);
            assert!(
                (got.p_value - want).abs() < 1e-12,
                "{d:?}: {} vs scipy {want}",
                got.p_value
            );
        }
    }

    #[test]
    fn three_seeds_cannot_go_below_a_quarter() {
        // All three differences positive: the most extreme pattern and its mirror, 2 of 8.
        let t = sign_flip(&[0.5, 0.7, 0.6]);
        assert_eq!(t.p_value, 0.25);
        assert_eq!(t.min_p_value, 0.25);
        // One seed: p = 1 whatever the difference.
        assert_eq!(sign_flip(&[3.0]).p_value, 1.0);
        // No difference at all: every pattern ties.
        assert_eq!(sign_flip(&[0.0, 0.0]).p_value, 1.0);
    }

    #[test]
    fn many_seeds_are_drawn_and_reproducible() {
        let d: Vec<f64> = (0..24).map(|i| 0.1 + (i % 5) as f64 * 0.05).collect();
        let t = sign_flip(&d);
        assert!(!t.exact);
        // Every difference positive: only the all-positive and all-negative patterns are as
        // extreme, 2 / 2^24: the draws find (almost) none.
        assert!(t.p_value < 1e-3, "{}", t.p_value);
        assert_eq!(t, sign_flip(&d));
    }

    const KNOWN_SIGN_FLIP: [(&[f64], f64); 3] = [
        (&[0.012, 0.004, 0.009], 0.25),
        (&[0.01, -0.002, 0.007, 0.005, 0.011], 0.125),
        (&[0.3, -0.1, 0.2, 0.4, -0.05, 0.25], 0.125),
    ];
}
