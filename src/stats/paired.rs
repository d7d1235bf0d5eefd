//! Paired comparisons of two classifiers: mean and standard deviation over seeds, McNemar's test
//! on paired test predictions, and a paired bootstrap confidence interval for the accuracy
//! difference (over test images and seeds).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// Mean, sample standard deviation (n - 1 in the denominator) and count.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation; 0 for a single value.
    pub std: f64,
    /// Values.
    pub n: usize,
}

/// Mean and sample standard deviation of `xs`; `None` if empty.
pub fn mean_std(xs: &[f64]) -> Option<MeanStd> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(MeanStd { mean, std, n })
}

/// McNemar's test of two classifiers on the same test images: do they err on different images
/// more often in one direction than chance allows?
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Images the first classifier gets right and the second wrong.
    pub b: u64,
    /// Images the first gets wrong and the second right.
    pub c: u64,
    /// McNemar's statistic `(b - c)^2 / (b + c)` (chi-square, 1 degree of freedom).
    pub chi2: f64,
    /// Edwards' continuity-corrected statistic `(|b - c| - 1)^2 / (b + c)`.
    pub chi2_corrected: f64,
    /// Two-sided p-value: from the corrected statistic when `b + c >= 25`, else the exact
    /// binomial test (`b ~ Binomial(b + c, 1/2)` under the null), the usual rule for comparing
    /// classifiers (Dietterich 1998).
    pub p_value: f64,
    /// Whether `p_value` is the exact binomial one.
    pub exact: bool,
}

/// Discordant pairs below which the exact binomial test replaces the chi-square approximation.
pub const EXACT_BELOW: u64 = 25;

/// McNemar's test from the discordant counts `b` (first right, second wrong) and `c`.
pub fn mcnemar(b: u64, c: u64) -> McNemar {
    let n = b + c;
    if n == 0 {
        return McNemar {
            b,
            c,
            chi2: 0.0,
            chi2_corrected: 0.0,
            p_value: 1.0,
            exact: true,
        };
    }
    let diff = (b as f64 - c as f64).abs();
    let chi2 = diff * diff / n as f64;
    let chi2_corrected = (diff - 1.0).max(0.0).powi(2) / n as f64;
    let exact = n < EXACT_BELOW;
    let p_value = if exact {
        let binomial = Binomial::new(0.5, n).expect("p = 0.5 and n > 0 are valid");
        (2.0 * binomial.cdf(b.min(c))).min(1.0)
    } else {
        let chi = ChiSquared::new(1.0).expect("1 degree of freedom is valid");
        chi.sf(chi2_corrected)
    };
    McNemar {
        b,
        c,
        chi2,
        chi2_corrected,
        p_value,
        exact,
    }
}

/// Counts `(b, c)` over paired outcomes: `a[i]` and `b[i]` say whether each classifier got
/// image `i` right.
pub fn discordant(a: &[bool], b: &[bool]) -> (u64, u64) {
    a.iter()
        .zip(b)
        .fold((0, 0), |(x, y), (&ra, &rb)| match (ra, rb) {
            (true, false) => (x + 1, y),
            (false, true) => (x, y + 1),
            _ => (x, y),
        })
}

/// A bootstrap confidence interval of an accuracy difference.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BootstrapCi {
    /// The observed difference: mean over seeds of (accuracy of the first - of the second).
    pub difference: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Bootstrap replicates drawn.
    pub replicates: usize,
    /// Two-sided bootstrap p-value of "no difference": twice the share of replicates on the
    /// far side of 0 from the observed difference (capped at 1), so that the interval at
    /// `level` excludes 0 when it is below `1 - level`. The observed difference counts as one
    /// replicate, `(1 + k) / (1 + R)` (Davison & Hinkley 1997, section 4.4): `R` replicates
    /// resolve no p below `2 / (R + 1)`, so none is claimed. Holm's correction works on it.
    pub p_value: f64,
}

/// Paired bootstrap of `accuracy(first) - accuracy(second)`.
///
/// `first[s][i]` and `second[s][i]` say whether each model, trained with seed `s`, got test
/// image `i` right; seed `s` of both models is one pair of runs. The sources of chance are the
/// seeds (initialisation, order, augmentation) and the test images (a sample of the world), so
/// each replicate redraws both, keeping every pairing: it draws seeds with replacement, then
/// test images with replacement (the same images for every drawn seed, since all runs saw the
/// same test set), and takes the mean difference over the drawn (seed, image) cells. The
/// interval is the percentile interval of the replicates. With one seed it covers the test
/// images only; with a handful of seeds the seed part is a coarse estimate.
///
/// # Panics
/// If the seeds disagree in image count, or there are no seeds or no images.
pub fn paired_bootstrap(
    first: &[Vec<bool>],
    second: &[Vec<bool>],
    replicates: usize,
    level: f64,
    seed: u64,
) -> BootstrapCi {
    assert_eq!(first.len(), second.len(), "one run per seed for each model");
    assert!(!first.is_empty(), "at least one seed");
    let n = first[0].len();
    assert!(n > 0, "at least one test image");
    // d[s][i] = 1, 0 or -1: first right and second wrong, both the same, or the reverse.
    let d: Vec<Vec<i8>> = first
        .iter()
        .zip(second)
        .map(|(a, b)| {
            assert!(
                a.len() == n && b.len() == n,
                "every run predicts the same test images"
            );
            a.iter().zip(b).map(|(&x, &y)| x as i8 - y as i8).collect()
        })
        .collect();
    let seeds = d.len();
    let difference = d
        .iter()
        .map(|row| row.iter().map(|&v| v as i64).sum::<i64>() as f64)
        .sum::<f64>()
        / (seeds * n) as f64;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws = Vec::with_capacity(replicates);
    let mut weight = vec![0i64; seeds];
    for _ in 0..replicates.max(1) {
        // How often each seed is drawn (all once when there is a single seed).
        weight.iter_mut().for_each(|w| *w = 0);
        for _ in 0..seeds {
            weight[rng.random_range(0..seeds)] += 1;
        }
        let mut total = 0i64;
        for _ in 0..n {
            let i = rng.random_range(0..n);
            for (s, w) in weight.iter().enumerate() {
                if *w != 0 {
                    total += w * d[s][i] as i64;
                }
            }
        }
        draws.push(total as f64 / (seeds * n) as f64);
    }
    draws.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    // Replicates at or beyond 0 on each side; the smaller share, doubled, is the p-value.
    let below = draws.iter().filter(|&&x| x <= 0.0).count();
    let above = draws.iter().filter(|&&x| x >= 0.0).count();
    let p_value = (2.0 * (below.min(above) + 1) as f64 / (draws.len() + 1) as f64).min(1.0);
    BootstrapCi {
        difference,
        low: quantile(&draws, alpha),
        high: quantile(&draws, 1.0 - alpha),
        level,
        replicates: draws.len(),
        p_value,
    }
}

/// The middle of `xs` once sorted, the upper of the two middle values for an even count, so that
/// it is always a value that was measured (a step's time, an epoch's seconds); `None` if empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

/// The `q` quantile of sorted values, linearly interpolated (NumPy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_a_measured_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(vec![7.5]), Some(7.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 1.0), 4.0);
        // numpy.quantile([1, 2, 3, 4], 0.5) == 2.5, 0.25 -> 1.75
        assert!((quantile(&xs, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&xs, 0.25) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn mean_std_is_the_sample_std() {
        let m = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m.mean, 5.0);
        // Population std is 2; the sample std is sqrt(32 / 7).
        assert!((m.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]).unwrap().std, 0.0);
        assert!(mean_std(&[]).is_none());
    }
}
