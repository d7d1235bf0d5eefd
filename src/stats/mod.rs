//! Statistics shared by the report and the explanations: one home, so that a test, an interval
//! or a p-value means the same thing wherever it is printed. Pure functions of numbers: this
//! module imports nothing else of the crate.
//!
//! - [`paired`]: mean ± std over seeds, McNemar's test on paired predictions, the paired
//!   bootstrap of an accuracy difference, quantiles.
//! - [`seed_test`]: the exact sign-flip permutation test over seeds (why not pooled McNemar or
//!   CMH: in its docs).
//! - [`power`]: the variance split (seeds vs the test set) and the paired design's power.
//! - [`multiplicity`]: Holm-Bonferroni, and the verdict rule.
//! - [`factorial`]: main effects and two-way interactions of crossed features (linear model).
//! - [`bootstrap`]: the bootstrap interval of a mean over items.
//! - [`rank`]: fractional ranks, Pearson's and Spearman's correlations.
//! - [`eigen`]: the leading eigenpair of a small symmetric matrix.
//! - [`format`]: how a p-value is printed.

pub mod bootstrap;
pub mod eigen;
pub mod factorial;
pub mod format;
pub mod multiplicity;
pub mod paired;
pub mod power;
pub mod rank;
pub mod seed_test;

pub use format::{format_p, p_cell};
pub use paired::{
    BootstrapCi, EXACT_BELOW, McNemar, MeanStd, discordant, mcnemar, mean_std, median,
    paired_bootstrap, quantile,
};
