//! Models: building blocks, networks (one file per family), the registry, cost counting, and
//! the custom tensor operations the blocks need.
//!
//! Every network offers its backbone (`forward_features`) and its head (`forward_head`)
//! separately, so the backbone can be frozen or probed, and a forward pass that shows the
//! activations of its named layers to a [`tap::LayerTap`] (Grad-CAM, probes).

pub mod blocks;
pub mod cost;
pub mod import;
pub mod matched;
pub mod nets;
pub mod ops;
pub mod registry;
pub mod tap;

pub use registry::{ModelCost, ModelOptions, ModelSpec, Network, NetworkConfig};
pub use tap::{Capture, LayerTap, NoTap, Recorder};
