//! McNemar's test: do two classifiers, scored on the same images, differ in accuracy?
//!
//! Only the images on which they disagree about correctness count: `b` where A is right and B
//! wrong, `c` the reverse. Under the null hypothesis of equal accuracy each such image is a fair
//! coin, so `b ~ Binomial(b + c, 1/2)`. Two p-values are given:
//!
//! - the exact test: `p = min(1, 2 P(X <= min(b, c)))` with `X ~ Binomial(b + c, 1/2)`,
//!   recommended when `b + c < 25`;
//! - the chi-square test with Edwards' continuity correction:
//!   `chi2 = (|b - c| - 1)^2 / (b + c)` against a chi-square with 1 degree of freedom.

use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// The outcome of McNemar's test.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Images where A is right and B wrong.
    pub a_only: usize,
    /// Images where B is right and A wrong.
    pub b_only: usize,
    /// The continuity-corrected statistic (0 when there is no disagreement).
    pub chi_square: f64,
    /// Its p-value (chi-square, 1 degree of freedom).
    pub chi_square_p: f64,
    /// The exact (binomial) two-sided p-value.
    pub exact_p: f64,
}

/// McNemar's test on `a_only` (A right, B wrong) and `b_only` (B right, A wrong).
pub fn mcnemar(a_only: usize, b_only: usize) -> McNemar {
    let n = a_only + b_only;
    if n == 0 {
        return McNemar {
            a_only,
            b_only,
            chi_square: 0.0,
            chi_square_p: 1.0,
            exact_p: 1.0,
        };
    }
    let diff = (a_only as f64 - b_only as f64).abs();
    let chi_square = (diff - 1.0).max(0.0).powi(2) / n as f64;
    let chi_square_p = ChiSquared::new(1.0).expect("1 degree of freedom is valid").sf(chi_square);
    let binomial = Binomial::new(0.5, n as u64).expect("p = 1/2 is valid");
    let exact_p = (2.0 * binomial.cdf(a_only.min(b_only) as u64)).min(1.0);
    McNemar {
        a_only,
        b_only,
        chi_square,
        chi_square_p,
        exact_p,
    }
}
