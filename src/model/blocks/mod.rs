//! Building blocks of the study's networks.
//!
//! - [`conv_unit`]: the study's conv layer: 3x3 conv -> BatchNorm -> ReLU -> optional 2x2 max-pool.
//! - [`mlp_head`]: the study's classifier: hidden fully-connected layers, then the output layer.

pub mod conv_unit;
pub mod mlp_head;

pub use conv_unit::{ConvUnit, ConvUnitConfig};
pub use mlp_head::{MlpHead, MlpHeadConfig};
