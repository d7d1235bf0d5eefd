//! Many comparisons at once: the Holm-Bonferroni correction, and the verdict rule the report
//! applies to an interval or an adjusted p-value.

/// Holm-Bonferroni adjusted p-values, in the order of `p_values`: sort ascending, multiply the
/// `i`-th smallest (from 0) by `m - i`, carry the running maximum, cap at 1. A hypothesis is
/// rejected at level `alpha` when its adjusted p-value is below `alpha`; this controls the
/// family-wise error rate over all `m` comparisons under any dependence between them.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// What a comparison says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The model beats its twin: the interval lies above 0.
    Better,
    /// The model loses: the interval lies below 0.
    Worse,
    /// The interval contains 0 (an end at exactly 0 included).
    NoClearDifference,
}

impl Verdict {
    /// The verdict of an interval `[low, high]` of the difference model - twin: better when
    /// its low end is above 0, worse when its high end is below 0, else no clear difference.
    /// An interval touching 0 does not exclude it.
    pub fn of_interval(low: f64, high: f64) -> Verdict {
        if low > 0.0 {
            Verdict::Better
        } else if high < 0.0 {
            Verdict::Worse
        } else {
            Verdict::NoClearDifference
        }
    }

    /// The verdict of an (adjusted) p-value at level `alpha` with the direction of the observed
    /// `difference`: a difference counts when `p < alpha` (strictly) and is not 0.
    pub fn of_p_value(p: f64, alpha: f64, difference: f64) -> Verdict {
        if p >= alpha || difference == 0.0 {
            Verdict::NoClearDifference
        } else if difference > 0.0 {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }

    /// As the report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoClearDifference => "no clear difference",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.005, 0.5],
    // method='holm')[1] (scripts/stats_known_values.py).
    #[test]
    fn holm_matches_statsmodels() {
        let got = holm(&[0.01, 0.04, 0.03, 0.005, 0.5]);
        for (g, w) in got.iter().zip(KNOWN_HOLM) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {KNOWN_HOLM:?}");
        }
    }

    #[test]
    fn holm_keeps_order_caps_at_one_and_handles_ties_and_one() {
        assert_eq!(holm(&[]), Vec::<f64>::new());
        assert_eq!(holm(&[0.03]), vec![0.03]);
        // Ties: both get 2 * 0.02.
        assert_eq!(holm(&[0.02, 0.02]), vec![0.04, 0.04]);
        // The running maximum: 3 * 0.01 = 0.03, then 2 * 0.012 = 0.024 -> 0.03.
        let a = holm(&[0.012, 0.01, 0.9]);
        assert!((a[1] - 0.03).abs() < 1e-15 && (a[0] - 0.03).abs() < 1e-15);
        assert_eq!(a[2], 0.9);
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
    }

    #[test]
    fn interval_verdicts_at_the_edges() {
        assert_eq!(Verdict::of_interval(0.001, 0.02), Verdict::Better);
        assert_eq!(Verdict::of_interval(-0.02, -0.001), Verdict::Worse);
        assert_eq!(
            Verdict::of_interval(-0.01, 0.01),
            Verdict::NoClearDifference
        );
        // Touching 0 does not exclude it.
        assert_eq!(Verdict::of_interval(0.0, 0.02), Verdict::NoClearDifference);
        assert_eq!(Verdict::of_interval(-0.02, 0.0), Verdict::NoClearDifference);
        // The smallest positive low end counts.
        assert_eq!(
            Verdict::of_interval(f64::MIN_POSITIVE, 1.0),
            Verdict::Better
        );
        // A degenerate interval at 0.
        assert_eq!(Verdict::of_interval(0.0, 0.0), Verdict::NoClearDifference);
    }

    #[test]
    fn p_value_verdicts_at_the_edges() {
        assert_eq!(Verdict::of_p_value(0.049, 0.05, 0.01), Verdict::Better);
        assert_eq!(Verdict::of_p_value(0.049, 0.05, -0.01), Verdict::Worse);
        // p equal to alpha is not significant.
        assert_eq!(
            Verdict::of_p_value(0.05, 0.05, 0.01),
            Verdict::NoClearDifference
        );
        assert_eq!(
            Verdict::of_p_value(0.0, 0.05, 0.0),
            Verdict::NoClearDifference
        );
        assert_eq!(Verdict::NoClearDifference.as_str(), "no clear difference");
    }

    const KNOWN_HOLM: [f64; 5] = [0.04, 0.09, 0.09, 0.025, 0.5];
}
