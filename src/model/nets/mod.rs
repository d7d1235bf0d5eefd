//! Networks, one file per family.
//!
//! - [`cnn`]: the study's plain CNN (section 3 of the study), the base every brain-inspired
//!   feature is added to.

pub mod cnn;

pub use cnn::{Cnn, CnnConfig};
