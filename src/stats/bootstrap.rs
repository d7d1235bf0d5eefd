//! The percentile bootstrap of a mean over items (images, seeds): how far the mean of these
//! items could move if they were drawn again.
//!
//! Items are resampled with replacement `replicates` times (seeded, so an interval is
//! reproducible); the interval is the `(1 - level) / 2` and `(1 + level) / 2` quantiles of the
//! resampled means (Efron's percentile interval). With fewer than two items no interval is
//! given: one value says nothing about its spread, and [`mean_interval`] says so.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::paired::quantile;

/// Replicates of the bootstrap unless told otherwise.
pub const REPLICATES: usize = 2000;

/// A mean with its bootstrap interval.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeanInterval {
    /// Mean of the items.
    pub mean: f64,
    /// Lower end of the interval (`None` with fewer than two items).
    pub low: Option<f64>,
    /// Upper end of the interval.
    pub high: Option<f64>,
    /// Items averaged.
    pub n: usize,
    /// Coverage of the interval (0.95).
    pub level: f64,
    /// Why there is no interval, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl MeanInterval {
    /// `0.123 [0.100, 0.150]`, or `0.123 (no interval: ...)`.
    pub fn display(&self, digits: usize) -> String {
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => {
                format!("{:.digits$} [{lo:.digits$}, {hi:.digits$}]", self.mean)
            }
            _ => format!(
                "{:.digits$} (no interval: {})",
                self.mean,
                self.note.as_deref().unwrap_or("")
            ),
        }
    }

    /// Whether the whole interval lies above `value` (false without an interval).
    pub fn above(&self, value: f64) -> bool {
        self.low.is_some_and(|lo| lo > value)
    }
}

/// The mean of `values` with its `level` percentile-bootstrap interval (`replicates`
/// resamples, seeded). Non-finite values are left out (and counted out of `n`). `None` when no
/// value is left.
pub fn mean_interval(
    values: &[f64],
    replicates: usize,
    level: f64,
    seed: u64,
) -> Option<MeanInterval> {
    let xs: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some(MeanInterval {
            mean,
            low: None,
            high: None,
            n,
            level,
            note: Some("fewer than 2 items: a single value gives no interval".to_string()),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..replicates.max(1))
        .map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some(MeanInterval {
        mean,
        low: Some(quantile(&means, tail)),
        high: Some(quantile(&means, 1.0 - tail)),
        n,
        level,
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_holds_the_mean_and_shrinks_with_more_items() {
        let few: Vec<f64> = (0..10).map(|i| (i % 5) as f64).collect();
        let many: Vec<f64> = (0..1000).map(|i| (i % 5) as f64).collect();
        let a = mean_interval(&few, 2000, 0.95, 1).unwrap();
        let b = mean_interval(&many, 2000, 0.95, 1).unwrap();
        assert_eq!(a.mean, 2.0);
        assert!(a.low.unwrap() < 2.0 && a.high.unwrap() > 2.0);
        assert!(b.high.unwrap() - b.low.unwrap() < 0.3 * (a.high.unwrap() - a.low.unwrap()));
        // The standard error of the mean of 0..4 repeated is sqrt(2 / n): about +-0.088 at n = 1000.
        let half = (b.high.unwrap() - b.low.unwrap()) / 2.0;
        assert!(
            (half - 1.96 * (2.0f64 / 1000.0).sqrt()).abs() < 0.02,
            "{half}"
        );
    }

    #[test]
    fn one_item_has_no_interval_and_says_why() {
        let m = mean_interval(&[0.5, f64::NAN], 100, 0.95, 0).unwrap();
        assert_eq!((m.mean, m.n, m.low, m.high), (0.5, 1, None, None));
        assert!(m.note.unwrap().contains("fewer than 2"));
        assert!(mean_interval(&[], 100, 0.95, 0).is_none());
    }
}
