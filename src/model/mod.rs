//! Models: building blocks, networks (one file per family) and the contract they keep, the model
//! options and table, cost counting, and the custom tensor operations the blocks need.
//!
//! - [`family`]: the traits every family implements ([`ImageClassifierConfig`],
//!   [`ImageClassifier`], [`ClassifierHead`]): backbone, head, named layers, cost.
//! - [`nets`]: the families, one file each; [`blocks`]: their building blocks.
//! - [`network`]: [`NetworkConfig`] and [`Network`], any family, forwarding to the traits.
//! - [`options`]: [`ModelOptions`] (the architecture flags) and [`ModelSpec`] (name + options).
//! - [`table`]: every model by name ([`table::MODELS`]) and [`table::network_config`].
//! - [`cost`]: FLOPs of layers and [`ModelCost`] (parameters and FLOPs of a model).
//! - [`tap`]: named activations for Grad-CAM and probes; [`import`]: reference weights;
//!   [`matched`]: compute-matched twins; [`ops`]: custom tensor operations.

pub mod blocks;
pub mod cost;
pub mod family;
pub mod import;
pub mod matched;
pub mod nets;
pub mod network;
pub mod ops;
pub mod options;
pub mod table;
pub mod tap;

pub use cost::ModelCost;
pub use family::{ClassifierHead, ImageClassifier, ImageClassifierConfig};
pub use network::{Network, NetworkConfig};
pub use options::{ModelOptions, ModelSpec};
pub use tap::{Capture, LayerTap, NoTap, Recorder};
