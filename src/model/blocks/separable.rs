//! The Xception-style depthwise-separable convolution: a depthwise `k x k` conv (one filter per
//! input channel: spatial correlations) followed by a pointwise 1x1 conv (cross-channel
//! correlations), with nothing in between, as in Chollet's Xception.
//!
//! Used by the Xception baseline and, as `--conv separable`, in place of the study CNN's plain
//! 3x3 conv: for `c_in = c_out = c` it costs `9c + c^2` multiply-adds per pixel instead of `9c^2`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::conv_bn::KAIMING_FAN_OUT;
use crate::model::{cost, ops};

/// Configuration of a [`SeparableConv`].
#[derive(Config, Debug)]
pub struct SeparableConvConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel side of the depthwise conv.
    #[config(default = 3)]
    pub kernel: usize,
    /// Stride of the depthwise conv.
    #[config(default = 1)]
    pub stride: usize,
    /// Symmetric zero padding of the depthwise conv.
    #[config(default = 1)]
    pub padding: usize,
}

/// Depthwise conv -> pointwise conv, both without bias.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h', w']` (`h' = h` for stride 1 and padding `kernel / 2`)
#[derive(Module, Debug)]
pub struct SeparableConv {
    /// `k x k`, one filter per channel (`groups = c_in`).
    pub depthwise: Conv2d,
    /// 1x1 across channels.
    pub pointwise: Conv2d,
}

impl SeparableConvConfig {
    /// Builds the conv on `device`.
    pub fn init(&self, device: &Device) -> SeparableConv {
        let p = self.padding;
        SeparableConv {
            depthwise: Conv2dConfig::new([self.c_in, self.c_in], [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_groups(self.c_in)
                .with_bias(false)
                .with_initializer(KAIMING_FAN_OUT)
                .init(device),
            pointwise: Conv2dConfig::new([self.c_in, self.c_out], [1, 1])
                .with_bias(false)
                .with_initializer(KAIMING_FAN_OUT)
                .init(device),
        }
    }

    /// Output `[height, width]` for an input of `[h, w]`.
    pub fn output_hw(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let out = |s| cost::conv_out(s, self.kernel, self.stride, 2 * self.padding);
        [out(h), out(w)]
    }

    /// Forward FLOPs for an input of `[h, w]`.
    pub fn flops(&self, hw: [usize; 2]) -> u64 {
        let out = self.output_hw(hw);
        cost::conv2d_flops(
            self.c_in,
            self.c_in,
            [self.kernel, self.kernel],
            self.c_in,
            out,
        ) + cost::conv2d_flops(self.c_in, self.c_out, [1, 1], 1, out)
    }
}

impl SeparableConv {
    /// Depthwise, then pointwise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.depthwise.forward(x); // [batch, c_in, h', w']
        ops::conv::forward(&self.pointwise, x) // [batch, c_out, h', w']
    }
}
