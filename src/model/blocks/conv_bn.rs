//! Conv -> BatchNorm -> activation: the unit every baseline is assembled from.
//!
//! Padding is explicit per side (`[top, left, bottom, right]`) so that TensorFlow's asymmetric
//! "SAME" padding (EfficientNet) and PyTorch's symmetric padding are the same module.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;

use crate::model::{cost, ops};

/// The non-linearity after a normalised conv.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet, EfficientNet-Lite: survives 8-bit quantisation).
    Relu6,
    /// No activation (the last conv of a residual branch, projection shortcuts).
    Identity,
}

impl Activation {
    /// Applies the activation.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => burn::tensor::activation::relu(x),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Identity => x,
        }
    }
}

/// He initialisation for convs followed by ReLU, as torchvision and timm initialise them:
/// normal with std `sqrt(2 / fan_out)`.
pub const KAIMING_FAN_OUT: Initializer = Initializer::KaimingNormal {
    gain: std::f64::consts::SQRT_2,
    fan_out_only: true,
};

/// TensorFlow's "SAME" padding of one side: `(before, after)` so that the output is
/// `ceil(side / stride)`; an odd total puts the extra pixel after (right / bottom).
pub fn same_padding(side: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = side.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(side);
    (total / 2, total - total / 2)
}

/// Configuration of a [`ConvBn`].
#[derive(Config, Debug)]
pub struct ConvBnConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel side.
    #[config(default = 3)]
    pub kernel: usize,
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding `[top, left, bottom, right]`.
    #[config(default = "[1, 1, 1, 1]")]
    pub padding: [usize; 4],
    /// Groups (`c_in` for a depthwise conv).
    #[config(default = 1)]
    pub groups: usize,
    /// BatchNorm epsilon (PyTorch 1e-5; TensorFlow-trained weights 1e-3).
    #[config(default = 1e-5)]
    pub bn_eps: f64,
    /// BatchNorm momentum of the running statistics (PyTorch convention).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// Activation after the BatchNorm.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
}

/// Conv (no bias: the BatchNorm shift replaces it) -> BatchNorm -> activation.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h', w']`, `h' = (h + top + bottom - kernel) / stride + 1`
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its normalisation.
    pub norm: BatchNorm,
    #[module(skip)]
    activation: Activation,
}

impl ConvBnConfig {
    /// A `kernel` x `kernel` conv with PyTorch's symmetric padding `kernel / 2`.
    pub fn symmetric(c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Self {
        let p = kernel / 2;
        Self::new(c_in, c_out)
            .with_kernel(kernel)
            .with_stride(stride)
            .with_padding([p, p, p, p])
    }

    /// Builds the unit on `device`.
    pub fn init(&self, device: &Device) -> ConvBn {
        let [top, left, bottom, right] = self.padding;
        ConvBn {
            conv: Conv2dConfig::new([self.c_in, self.c_out], [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
                .with_groups(self.groups)
                .with_bias(false)
                .with_initializer(KAIMING_FAN_OUT)
                .init(device),
            norm: BatchNormConfig::new(self.c_out)
                .with_epsilon(self.bn_eps)
                .with_momentum(self.bn_momentum)
                .init(device),
            activation: self.activation,
        }
    }

    /// Output `[height, width]` for an input of `[h, w]`.
    pub fn output_hw(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let [top, left, bottom, right] = self.padding;
        [
            cost::conv_out(h, self.kernel, self.stride, top + bottom),
            cost::conv_out(w, self.kernel, self.stride, left + right),
        ]
    }

    /// Forward FLOPs for an input of `[h, w]`.
    pub fn flops(&self, hw: [usize; 2]) -> u64 {
        cost::conv2d_flops(
            self.c_in,
            self.c_out,
            [self.kernel, self.kernel],
            self.groups,
            self.output_hw(hw),
        )
    }
}

impl ConvBn {
    /// Conv -> BatchNorm -> activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = ops::conv::forward(&self.conv, x);
        match self.activation {
            // fused: one op, one pass each way
            Activation::Relu => ops::batch_norm::forward_relu(&self.norm, y),
            other => other.forward(ops::batch_norm::forward(&self.norm, y)),
        }
    }
}
