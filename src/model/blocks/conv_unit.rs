//! The study's conv layer: 3x3 conv -> BatchNorm -> ReLU -> optional 2x2 max-pool.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

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
}

/// 3x3 conv (padding 1, no bias: BatchNorm's shift replaces it) -> BatchNorm -> ReLU ->
/// optional 2x2 max-pool.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h, w]`, or `[batch, c_out, h/2, w/2]` with pooling
#[derive(Module, Debug)]
pub struct ConvUnit {
    conv: Conv2d,
    norm: BatchNorm,
    activation: Relu,
    pool: Option<MaxPool2d>,
}

impl ConvUnitConfig {
    /// Builds the unit on `device`.
    pub fn init(&self, device: &Device) -> ConvUnit {
        ConvUnit {
            conv: Conv2dConfig::new([self.c_in, self.c_out], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
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
        cost::conv2d_flops(self.c_in, self.c_out, [3, 3], 1, [h, w])
    }
}

impl ConvUnit {
    /// The conv layer's output before normalisation: `[batch, c_out, h, w]`.
    pub fn conv(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    /// BatchNorm -> ReLU, applied to a conv output: the activation Grad-CAM explains.
    pub fn activate(&self, x: Tensor<4>) -> Tensor<4> {
        self.activation.forward(self.norm.forward(x)) // [batch, c_out, h, w]
    }

    /// The optional 2x2 max-pool, applied to an activation.
    pub fn downsample(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.pool {
            Some(pool) => pool.forward(x), // [batch, c_out, h/2, w/2]
            None => x,
        }
    }

    /// BatchNorm -> ReLU -> optional pool, applied to a conv output.
    pub fn post(&self, x: Tensor<4>) -> Tensor<4> {
        self.downsample(self.activate(x))
    }

    /// The whole unit.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.post(self.conv(x))
    }
}
