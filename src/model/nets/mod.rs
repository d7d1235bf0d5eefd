//! Networks, one file per family.
//!
//! - [`cnn`]: the study's plain CNN (section 3 of the study), the base every brain-inspired
//!   feature is added to.
//! - [`vgg`]: VGG-16 with and without BatchNorm (torchvision `vgg16`, `vgg16_bn`).
//! - [`resnet`]: ResNet-50 (torchvision `resnet50`).
//! - [`xception`]: Xception (timm `legacy_xception` / `xception`).
//! - [`efficientnet_lite`]: EfficientNet-Lite0 (lukemelas-style PyTorch port of the TF model).
//!
//! Each family implements [`ImageClassifierConfig`](super::ImageClassifierConfig) and
//! [`ImageClassifier`](super::ImageClassifier) (`src/model/family.rs`) and is one line of the
//! family list in `src/model/network.rs`. The baselines come in their standard ImageNet form and
//! a CIFAR form (see [`Form`]).

pub mod cnn;
pub mod efficientnet_lite;
pub mod resnet;
pub mod vgg;
pub mod xception;

pub use cnn::{Cnn, CnnConfig};
pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use vgg::{Vgg, VggConfig};
pub use xception::{Xception, XceptionConfig};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Which stem a baseline has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The reference definition, for ImageNet-sized inputs (and pretrained weights).
    #[default]
    Imagenet,
    /// For 32x32 inputs: a 3x3 stride-1 first conv and no early down-sampling.
    Cifar,
}
