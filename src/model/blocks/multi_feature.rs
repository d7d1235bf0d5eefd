//! Multi-feature extraction (`--conv`): what a conv unit of the study's CNN uses in place of its
//! plain 3x3 conv. All three keep the spatial size and map `c_in` to `c_out` channels.
//!
//! - `plain`: one 3x3 conv (the study's baseline);
//! - `inception`: parallel 1x1, 3x3, double-3x3 and pool branches, concatenated ([`Inception`]);
//! - `separable`: Xception's depthwise 3x3 then pointwise 1x1 ([`SeparableConv`]).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::inception::{Inception, InceptionConfig};
use super::separable::{SeparableConv, SeparableConvConfig};
use crate::model::{cost, ops};

/// Which conv a unit uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConvKind {
    /// A plain 3x3 conv.
    #[default]
    Plain,
    /// An Inception-style block of four parallel branches.
    Inception,
    /// A depthwise-separable conv (Xception style).
    Separable,
}

/// The conv of a unit, of any [`ConvKind`].
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h, w]`
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a layer choice, built once per network: boxing saves nothing that matters
pub enum FeatureConv {
    /// A plain 3x3 conv, padding 1, no bias.
    Plain(Conv2d),
    /// An Inception-style block.
    Inception(Inception),
    /// A depthwise-separable conv.
    Separable(SeparableConv),
}

impl ConvKind {
    /// Builds a `c_in -> c_out` conv of this kind on `device`.
    pub fn init(self, c_in: usize, c_out: usize, device: &Device) -> FeatureConv {
        match self {
            ConvKind::Plain => FeatureConv::Plain(
                Conv2dConfig::new([c_in, c_out], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false)
                    .init(device),
            ),
            ConvKind::Inception => {
                FeatureConv::Inception(InceptionConfig::new(c_in, c_out).init(device))
            }
            ConvKind::Separable => {
                FeatureConv::Separable(SeparableConvConfig::new(c_in, c_out).init(device))
            }
        }
    }

    /// Forward FLOPs of a `c_in -> c_out` conv of this kind on an `[h, w]` map.
    pub fn flops(self, c_in: usize, c_out: usize, hw: [usize; 2]) -> u64 {
        match self {
            ConvKind::Plain => cost::conv2d_flops(c_in, c_out, [3, 3], 1, hw),
            ConvKind::Inception => InceptionConfig::new(c_in, c_out).flops(hw),
            ConvKind::Separable => SeparableConvConfig::new(c_in, c_out).flops(hw),
        }
    }

    /// The smallest output width this kind supports.
    pub fn min_width(self) -> usize {
        match self {
            ConvKind::Inception => 4,
            _ => 1,
        }
    }
}

impl FeatureConv {
    /// The conv on `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            FeatureConv::Plain(c) => ops::conv::forward(c, x),
            FeatureConv::Inception(c) => c.forward(x),
            FeatureConv::Separable(c) => c.forward(x),
        }
    }
}
