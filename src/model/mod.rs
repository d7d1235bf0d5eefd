//! Models: building blocks, networks (one file per family), the registry, and cost counting.
//!
//! Every network offers its backbone (`forward_features`) and its head (`forward_head`)
//! separately, so the backbone can be frozen or probed.

pub mod blocks;
pub mod cost;
pub mod import;
pub mod nets;
pub mod registry;

pub use registry::{ModelCost, ModelOptions, ModelSpec, Network, NetworkConfig};
