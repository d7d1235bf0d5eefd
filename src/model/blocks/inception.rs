//! The Inception-style multi-feature block (Szegedy et al., 2015; the 5x5 branch factorised into
//! two 3x3 convs as in Inception-v2/v3): four parallel branches see the same input at different
//! receptive fields and their outputs are concatenated along channels.
//!
//! - 1x1 conv;
//! - 1x1 reduce -> 3x3 conv;
//! - 1x1 reduce -> 3x3 -> 3x3 conv (the receptive field of a 5x5 at 18/25 of its cost);
//! - 3x3 max-pool (stride 1) -> 1x1 conv.
//!
//! Used as `--conv inception`, in place of the study CNN's plain 3x3 conv: like that conv it
//! keeps the spatial size and its output is normalised and activated by the unit around it, so
//! each branch's last conv is linear (no bias, no BatchNorm); the reduce convs inside the
//! branches are conv -> BatchNorm -> ReLU.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;

use super::conv_bn::{ConvBn, ConvBnConfig, KAIMING_FAN_OUT};
use crate::model::cost;
use crate::model::ops::{self, conv};

/// Configuration of an [`Inception`] block.
#[derive(Config, Debug)]
pub struct InceptionConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels (split over the four branches).
    pub c_out: usize,
}

impl InceptionConfig {
    /// Channels out of each branch: `[1x1, 3x3, double 3x3, pool]`.
    pub fn branch_widths(&self) -> [usize; 4] {
        let quarter = (self.c_out / 4).max(1);
        [quarter, self.c_out - 3 * quarter, quarter, quarter]
    }

    /// Channels of the 1x1 reduce convs of the 3x3 and double-3x3 branches (half their output,
    /// as GoogLeNet's bottlenecks roughly are).
    pub fn reduce_widths(&self) -> [usize; 2] {
        let [_, b3, b5, _] = self.branch_widths();
        [b3.div_ceil(2), b5.div_ceil(2)]
    }

    /// Checks that every branch gets at least one channel.
    pub fn is_valid(&self) -> bool {
        self.c_out >= 4 && self.c_in > 0
    }
}

fn conv(c_in: usize, c_out: usize, kernel: usize, device: &Device) -> Conv2d {
    let p = kernel / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .with_initializer(KAIMING_FAN_OUT)
        .init(device)
}

/// Four parallel branches, concatenated.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h, w]`
#[derive(Module, Debug)]
pub struct Inception {
    branch1x1: Conv2d,
    branch3x3_reduce: ConvBn,
    branch3x3: Conv2d,
    branch5x5_reduce: ConvBn,
    branch5x5_a: ConvBn,
    branch5x5_b: Conv2d,
    pool: MaxPool2d,
    branch_pool: Conv2d,
}

impl InceptionConfig {
    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> Inception {
        let [b1, b3, b5, bp] = self.branch_widths();
        let [r3, r5] = self.reduce_widths();
        Inception {
            branch1x1: conv(self.c_in, b1, 1, device),
            branch3x3_reduce: ConvBnConfig::symmetric(self.c_in, r3, 1, 1).init(device),
            branch3x3: conv(r3, b3, 3, device),
            branch5x5_reduce: ConvBnConfig::symmetric(self.c_in, r5, 1, 1).init(device),
            branch5x5_a: ConvBnConfig::symmetric(r5, b5, 3, 1).init(device),
            branch5x5_b: conv(b5, b5, 3, device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([1, 1])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            branch_pool: conv(self.c_in, bp, 1, device),
        }
    }

    /// Forward FLOPs for an input of `[h, w]`.
    pub fn flops(&self, hw: [usize; 2]) -> u64 {
        let [b1, b3, b5, bp] = self.branch_widths();
        let [r3, r5] = self.reduce_widths();
        let f = |i, o, k| cost::conv2d_flops(i, o, [k, k], 1, hw);
        f(self.c_in, b1, 1)
            + f(self.c_in, r3, 1)
            + f(r3, b3, 3)
            + f(self.c_in, r5, 1)
            + f(r5, b5, 3)
            + f(b5, b5, 3)
            + f(self.c_in, bp, 1)
    }
}

impl Inception {
    /// The four branches on `x`, concatenated.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = conv::forward(&self.branch1x1, x.clone()); // [batch, b1, h, w]
        let b3 = conv::forward(&self.branch3x3, self.branch3x3_reduce.forward(x.clone())); // [batch, b3, h, w]
        let b5 = self.branch5x5_reduce.forward(x.clone()); // [batch, r5, h, w]
        let b5 = conv::forward(&self.branch5x5_b, self.branch5x5_a.forward(b5)); // [batch, b5, h, w]
        let bp = conv::forward(&self.branch_pool, ops::max_pool::forward(&self.pool, x)); // [batch, bp, h, w]
        Tensor::cat(vec![b1, b3, b5, bp], 1) // [batch, c_out, h, w]
    }
}
