//! Statistics shared by the report and the explanations: one home, so that a test, an interval
//! or a p-value means the same thing wherever it is printed. Pure functions of numbers: this
//! module imports nothing else of the crate.
//!
//! - [`paired`]: mean ± std over seeds, McNemar's test on paired predictions, the paired
//!   bootstrap of an accuracy difference, quantiles.

pub mod paired;

pub use paired::{BootstrapCi, EXACT_BELOW, McNemar, MeanStd, discordant, mcnemar, mean_std, paired_bootstrap, quantile};
