//! The study's conv layer: 3x3 conv -> BatchNorm -> ReLU -> optional 2x2 max-pool. The conv
//! can be replaced by a multi-feature one (`--conv inception|separable`).

use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Relu};
use burn::prelude::*;

use super::multi_feature::{ConvKind, FeatureConv};
use crate::model::cost;

/// Configuration of a [`ConvUnit`].
#[derive(Config, Debug)]
pub struct ConvUnitConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Follow the ReLU with a 2x2, stride-2 max-pool.
    #[config(default = true)]
    pub pool: bool,
    /// The conv: plain 3x3, Inception-style block, or depthwise-separable.
    #[config(default = "ConvKind::Plain")]
    pub conv: ConvKind,
}

/// 3x3 conv (padding 1, no bias: BatchNorm's shift replaces it; or a multi-feature conv of the
/// same shape) -> BatchNorm -> ReLU -> optional 2x2 max-pool.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h, w]`, or `[batch, c_out, h/2, w/2]` with pooling
#[derive(Module, Debug)]
pub struct ConvUnit {
    conv: FeatureConv,
    norm: BatchNorm,
    activation: Relu,
    pool: Option<MaxPool2d>,
}

impl ConvUnitConfig {
    /// Builds the unit on `device`.
    pub fn init(&self, device: &Device) -> ConvUnit {
        ConvUnit {
            conv: self.conv.init(self.c_in, self.c_out, device),
            norm: BatchNormConfig::new(self.c_out).init(device),
            activation: Relu::new(),
            pool: self.pool.then(|| MaxPool2dConfig::new([2, 2]).init()),
        }
    }

    /// Output `[channels, height, width]` for an input of `[c_in, h, w]`.
    pub fn output_shape(&self, [_, h, w]: [usize; 3]) -> [usize; 3] {
        if self.pool {
            [self.c_out, cost::pooled(h), cost::pooled(w)]
        } else {
            [self.c_out, h, w]
        }
    }

    /// Forward FLOPs for an input of `[c_in, h, w]`.
    pub fn flops(&self, [_, h, w]: [usize; 3]) -> u64 {
        self.conv.flops(self.c_in, self.c_out, [h, w])
    }
}

impl ConvUnit {
    /// The conv layer's output before normalisation: `[batch, c_out, h, w]`.
    pub fn conv(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    /// BatchNorm -> ReLU -> optional pool, applied to a conv output.
    pub fn post(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.activation.forward(self.norm.forward(x)); // [batch, c_out, h, w]
        match &self.pool {
            Some(pool) => pool.forward(x), // [batch, c_out, h/2, w/2]
            None => x,
        }
    }

    /// The whole unit.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.post(self.conv(x))
    }
}
