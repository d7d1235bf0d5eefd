//! What a comparison over seeds can see: the split of its chance into seed-to-seed spread and
//! the test set's own sampling error, and the power of the paired design (how many seeds a
//! difference needs, and what difference the seeds at hand can detect).
//!
//! The power is that of the two-sided paired t-test over seeds: seed `s` of the model and seed
//! `s` of its twin form a pair, and the test works on the per-seed differences `d_s`. Its power
//! for `n` seeds, a true difference `delta` and a seed-to-seed standard deviation `sigma` of
//! `d_s` is exact (the noncentral t distribution with `n - 1` degrees of freedom and
//! noncentrality `delta sqrt(n) / sigma`), computed by integrating over the chi distribution of
//! the sample standard deviation; the same figures as statsmodels' `TTestPower`.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::gamma::ln_gamma;

/// The chance in a test accuracy, split into its two sources.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct VarianceSplit {
    /// Sample standard deviation over seeds of the test accuracy (percentage points); `None`
    /// with one seed.
    pub seed_std: Option<f64>,
    /// Binomial standard error of one run's test accuracy, `sqrt(p (1 - p) / N)` for the mean
    /// accuracy `p` over `N` test images (percentage points).
    pub binomial_se: f64,
    /// Which is larger: `"seeds"` or `"test set"`; `None` with one seed.
    pub dominant: Option<&'static str>,
}

/// The variance split of a model's test accuracies `accuracies` (fractions, one per seed) on a
/// test set of `images` images.
///
/// # Panics
/// If `accuracies` is empty or `images` is 0.
pub fn variance_split(accuracies: &[f64], images: usize) -> VarianceSplit {
    assert!(
        !accuracies.is_empty() && images > 0,
        "at least one seed and one test image"
    );
    let n = accuracies.len() as f64;
    let p = accuracies.iter().sum::<f64>() / n;
    let binomial_se = 100.0 * (p * (1.0 - p) / images as f64).sqrt();
    let seed_std = (accuracies.len() > 1).then(|| {
        100.0 * (accuracies.iter().map(|a| (a - p).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    });
    let dominant = seed_std.map(|s| if s > binomial_se { "seeds" } else { "test set" });
    VarianceSplit {
        seed_std,
        binomial_se,
        dominant,
    }
}

/// Significance level of the power analysis.
pub const ALPHA: f64 = 0.05;
/// Power the analysis asks for.
pub const POWER: f64 = 0.8;
/// Seed counts above this are reported as "more than".
pub const MAX_SEEDS: usize = 10_000;

/// Power of the two-sided paired t-test at level `alpha` with `n` pairs, for a true mean
/// difference of `effect` standard deviations of the differences (Cohen's d of the
/// differences). `n` must be at least 2.
pub fn paired_t_power(effect: f64, n: usize, alpha: f64) -> f64 {
    assert!(n >= 2, "a t-test needs at least two pairs");
    let df = (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0 is valid");
    let critical = t.inverse_cdf(1.0 - alpha / 2.0);
    let lambda = effect.abs() * (n as f64).sqrt();
    // P(T' > c) + P(T' < -c), T' = (Z + lambda) / (X / sqrt(df)), X ~ chi(df): integrate over X.
    noncentral_t_sf(critical, df, lambda) + noncentral_t_sf(critical, df, -lambda)
}

/// `P(T' > c)` for the noncentral t with `df` degrees of freedom and noncentrality `lambda`:
/// `∫ f_chi(x; df) P(Z > c x / sqrt(df) - lambda) dx` by Simpson's rule over the chi density,
/// which is smooth and finite for every `df >= 1` (the chi-square density is not, at 0).
fn noncentral_t_sf(c: f64, df: f64, lambda: f64) -> f64 {
    let normal = Normal::standard();
    let log_norm = (df / 2.0 - 1.0) * std::f64::consts::LN_2 + ln_gamma(df / 2.0);
    let density = |x: f64| {
        if x <= 0.0 {
            if df == 1.0 {
                (2.0 / std::f64::consts::PI).sqrt()
            } else {
                0.0
            }
        } else {
            ((df - 1.0) * x.ln() - x * x / 2.0 - log_norm).exp()
        }
    };
    // The chi density is negligible beyond its mean plus 12.
    let upper = df.sqrt() + 12.0;
    let steps = 4000;
    let h = upper / steps as f64;
    let f = |x: f64| density(x) * normal.sf(c * x / df.sqrt() - lambda);
    let mut sum = f(0.0) + f(upper);
    for i in 1..steps {
        sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    (sum * h / 3.0).clamp(0.0, 1.0)
}

/// Pairs the paired t-test needs to detect a difference of `effect` standard deviations with
/// `power` at level `alpha`; `None` above [`MAX_SEEDS`].
pub fn seeds_needed(effect: f64, alpha: f64, power: f64) -> Option<usize> {
    // Power grows with n: double to bracket, then bisect.
    let reaches = |n: usize| paired_t_power(effect, n, alpha) >= power;
    let mut high = 2;
    while !reaches(high) {
        if high >= MAX_SEEDS {
            return None;
        }
        high = (high * 2).min(MAX_SEEDS);
    }
    let mut low = high / 2;
    if low < 2 || reaches(low) {
        return Some(if high == 2 { 2 } else { low.max(2) });
    }
    while high - low > 1 {
        let mid = (low + high) / 2;
        if reaches(mid) { high = mid } else { low = mid }
    }
    Some(high)
}

/// The smallest difference, in standard deviations of the differences, that `n` pairs detect
/// with `power` at level `alpha`.
pub fn detectable_effect(n: usize, alpha: f64, power: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1.0);
    while paired_t_power(high, n, alpha) < power {
        high *= 2.0;
    }
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if paired_t_power(mid, n, alpha) < power {
            low = mid
        } else {
            high = mid
        }
    }
    high
}

/// The power analysis of one comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PowerAnalysis {
    /// Seeds (pairs) at hand.
    pub seeds: usize,
    /// Sample standard deviation over seeds of the paired difference (percentage points);
    /// `None` with one seed.
    pub diff_std: Option<f64>,
    /// The smallest difference (pp) the seeds at hand detect at 80% power, α = 0.05.
    pub detectable: Option<f64>,
    /// Seeds needed for 0.5 pp and for 1.0 pp (`None`: more than [`MAX_SEEDS`], or unknown).
    pub needed: Vec<(f64, Option<usize>)>,
    /// The difference (pp) the test set alone lets any number of seeds detect at that power
    /// (its paired sampling error, which more seeds do not shrink).
    pub test_set_floor: f64,
    /// Why no figure is given, if none is.
    pub note: Option<String>,
}

/// The differences the power analysis asks about, in percentage points.
pub const TARGETS: [f64; 2] = [0.5, 1.0];

/// Power analysis from the per-seed paired differences `differences` (percentage points) and
/// the paired standard error of one run's difference on the test set `test_se` (pp).
pub fn power_analysis(differences: &[f64], test_se: f64) -> PowerAnalysis {
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - ALPHA / 2.0) + normal.inverse_cdf(POWER);
    let test_set_floor = z * test_se;
    let seeds = differences.len();
    if seeds < 2 {
        return PowerAnalysis {
            seeds,
            diff_std: None,
            detectable: None,
            needed: TARGETS.iter().map(|&t| (t, None)).collect(),
            test_set_floor,
            note: Some(format!(
                "{seeds} seed: a power analysis needs at least two seeds (their spread is the variance it uses)"
            )),
        };
    }
    let n = seeds as f64;
    let mean = differences.iter().sum::<f64>() / n;
    let std = (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    if std <= 0.0 {
        return PowerAnalysis {
            seeds,
            diff_std: Some(std),
            detectable: None,
            needed: TARGETS.iter().map(|&t| (t, None)).collect(),
            test_set_floor,
            note: Some(
                "the paired differences do not vary over seeds: no variance to plan with"
                    .to_string(),
            ),
        };
    }
    PowerAnalysis {
        seeds,
        diff_std: Some(std),
        detectable: Some(std * detectable_effect(seeds, ALPHA, POWER)),
        needed: TARGETS
            .iter()
            .map(|&t| (t, seeds_needed(t / std, ALPHA, POWER)))
            .collect(),
        test_set_floor,
        note: None,
    }
}

/// Paired standard error (pp) of the accuracy difference of two classifiers on one test set of
/// `images` images, `b` of which only the first and `c` only the second gets right:
/// `sqrt(((b + c) / N - ((b - c) / N)^2) / N)`.
pub fn paired_test_se(b: f64, c: f64, images: usize) -> f64 {
    let n = images as f64;
    let discordant = (b + c) / n;
    let diff = (b - c) / n;
    100.0 * ((discordant - diff * diff).max(0.0) / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known values from statsmodels 0.15 (scripts/stats_known_values.py):
    // TTestPower().power(effect_size, nobs, alpha=0.05, alternative='two-sided') and
    // solve_power(..., power=0.8).
    #[test]
    fn power_matches_statsmodels() {
        for (effect, n, want) in KNOWN_POWER {
            let got = paired_t_power(effect, n, 0.05);
            assert!(
                (got - want).abs() < 1e-6,
                "power({effect}, {n}) = {got}, statsmodels {want}"
            );
        }
    }

    #[test]
    fn seeds_needed_is_the_ceiling_of_statsmodels_nobs() {
        for (effect, nobs) in KNOWN_NOBS {
            assert_eq!(
                seeds_needed(effect, 0.05, 0.8),
                Some(nobs.ceil() as usize),
                "effect {effect}"
            );
        }
        // A tiny difference needs more seeds than anyone runs.
        assert_eq!(seeds_needed(0.001, 0.05, 0.8), None);
        // A huge one needs the minimum, two.
        assert_eq!(seeds_needed(50.0, 0.05, 0.8), Some(2));
    }

    #[test]
    fn detectable_effect_matches_statsmodels() {
        for (n, want) in KNOWN_EFFECT {
            let got = detectable_effect(n, 0.05, 0.8);
            assert!(
                (got - want).abs() < 1e-5,
                "n = {n}: {got}, statsmodels {want}"
            );
        }
    }

    #[test]
    fn one_seed_gives_no_number() {
        let p = power_analysis(&[0.4], 0.3);
        assert!(p.detectable.is_none() && p.diff_std.is_none());
        assert!(p.needed.iter().all(|(_, n)| n.is_none()));
        assert!(p.note.as_deref().unwrap().contains("at least two seeds"));
    }

    #[test]
    fn power_analysis_scales_with_the_spread() {
        // d = 1, 2, 3 pp: std 1 pp; 3 seeds detect detectable_effect(3) pp.
        let p = power_analysis(&[1.0, 2.0, 3.0], 0.3);
        assert!((p.diff_std.unwrap() - 1.0).abs() < 1e-12);
        assert!((p.detectable.unwrap() - detectable_effect(3, 0.05, 0.8)).abs() < 1e-9);
        assert_eq!(p.needed[0], (0.5, seeds_needed(0.5, 0.05, 0.8)));
        assert_eq!(p.needed[1], (1.0, seeds_needed(1.0, 0.05, 0.8)));
        // The floor: (z_0.975 + z_0.8) * 0.3 = 2.8016 * 0.3.
        assert!((p.test_set_floor - 0.840_46).abs() < 1e-4);
    }

    #[test]
    fn variance_split_names_the_larger_source() {
        // p = 0.7 over 10,000 images: sqrt(0.21 / 10000) = 0.458 pp.
        let v = variance_split(&[0.69, 0.70, 0.71], 10_000);
        assert!((v.binomial_se - 0.458_26).abs() < 1e-4);
        assert!((v.seed_std.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(v.dominant, Some("seeds"));
        let v = variance_split(&[0.700, 0.701, 0.702], 10_000);
        assert_eq!(v.dominant, Some("test set"));
        let v = variance_split(&[0.7], 10_000);
        assert_eq!((v.seed_std, v.dominant), (None, None));
    }

    #[test]
    fn paired_se_of_a_known_table() {
        // b = 300, c = 200 of 10,000: sqrt((0.05 - 0.0001) / 10000) = 0.22338 pp.
        assert!((paired_test_se(300.0, 200.0, 10_000) - 0.223_383).abs() < 1e-5);
    }

    const KNOWN_POWER: [(f64, usize, f64); 4] = [
        (0.5, 10, 0.2931756065140767),
        (1.0, 5, 0.4013899173717948),
        (2.0, 3, 0.4707494312784346),
        (0.3, 40, 0.4565221127061356),
    ];
    const KNOWN_NOBS: [(f64, f64); 3] = [
        (0.5, 33.36713118431779),
        (1.0, 9.93785094105438),
        (0.25, 127.51583051555221),
    ];
    const KNOWN_EFFECT: [(usize, f64); 3] = [
        (2, 11.549889754978167),
        (3, 3.264043552819638),
        (10, 0.9960019107624178),
    ];
}
