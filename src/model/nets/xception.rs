//! Xception (Chollet, 2017) as timm's `legacy_xception` (also registered as `xception`)
//! defines it, the port of the Keras original: entry flow (two plain 3x3 convs, three blocks
//! of depthwise-separable convs that halve the map), middle flow (eight residual blocks of
//! three separable convs at 728 channels), exit flow (one down-sampling block, two separable
//! convs to 1536 and 2048 channels), global average pool, one linear layer.
//!
//! Each block is `[ReLU -> separable conv -> BatchNorm] x reps`, a 3x3 stride-2 max-pool when
//! it down-samples, plus a shortcut (identity, or 1x1 stride-s conv + BatchNorm when the shape
//! changes). The first block starts without ReLU; the exit block grows its width on the last
//! separable conv rather than the first.
//!
//! Forms (`--form`):
//! - `imagenet`: timm's: `conv1` is 3x3 stride 2 without padding, `conv2` 3x3 without padding
//!   (299 -> 149 -> 147); the network down-samples 32x in all.
//! - `cifar`: `conv1` and `conv2` are 3x3 stride 1 with padding 1, so only the four
//!   down-sampling blocks shrink the map (32x32 -> 2x2).

use burn::nn::BatchNorm;
use burn::nn::BatchNormConfig;
use burn::nn::PaddingConfig2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::Form;
use crate::error::{Error, Result};
use crate::model::blocks::conv_bn::{Activation, ConvBn, ConvBnConfig};
use crate::model::blocks::{
    PoolClassifier, PoolClassifierConfig, Resize, SeparableConv, SeparableConvConfig,
};
use crate::model::family::{ImageClassifier, ImageClassifierConfig};
use crate::model::tap::LayerTap;
use crate::model::{cost, ops};

/// Configuration of an [`Xception`].
#[derive(Config, Debug)]
pub struct XceptionConfig {
    /// Classes to predict.
    pub num_classes: usize,
    /// Input `[channels, height, width]` (before `resize`).
    #[config(default = "[3, 299, 299]")]
    pub input: [usize; 3],
    /// ImageNet or CIFAR form.
    #[config(default = "Form::Imagenet")]
    pub form: Form,
    /// Channel widths: `conv1`, `conv2`, blocks 1-3 (entry flow), middle flow, block 12
    /// (exit), `conv3`, `conv4`. Xception: 32, 64, 128, 256, 728, 728, 1024, 1536, 2048.
    #[config(default = "vec![32, 64, 128, 256, 728, 728, 1024, 1536, 2048]")]
    pub widths: Vec<usize>,
    /// Residual blocks of the middle flow (Xception: 8).
    #[config(default = 8)]
    pub middle_blocks: usize,
    /// Resize inputs to this square side first.
    #[config(default = "None")]
    pub resize: Option<usize>,
}

/// Separable conv -> BatchNorm (timm: `SeparableConv2d` then `BatchNorm2d`).
#[derive(Module, Debug)]
pub struct SeparableBn {
    /// The depthwise-separable conv.
    pub conv: SeparableConv,
    /// Its normalisation.
    pub norm: BatchNorm,
}

impl SeparableBn {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            conv: SeparableConvConfig::new(c_in, c_out).init(device),
            norm: BatchNormConfig::new(c_out).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// An Xception block.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, h / stride, w / stride]` (ceil)
#[derive(Module, Debug)]
pub struct XceptionBlock {
    /// The separable convs (timm `rep`).
    pub reps: Vec<SeparableBn>,
    /// 3x3 stride-2 max-pool ending a down-sampling block.
    pool: Option<MaxPool2d>,
    /// Projection shortcut (timm `skip`, `skipbn`) when channels or size change.
    pub skip: Option<ConvBn>,
    start_with_relu: bool,
}

impl XceptionBlock {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        for (i, rep) in self.reps.iter().enumerate() {
            if i > 0 || self.start_with_relu {
                x = relu(x);
            }
            x = rep.forward(x); // [batch, c, h, w]
        }
        if let Some(pool) = &self.pool {
            x = ops::max_pool::forward(pool, x); // [batch, c_out, h/2, w/2]
        }
        let shortcut = match &self.skip {
            Some(skip) => skip.forward(input),
            None => input,
        };
        x + shortcut
    }
}

/// One block's configuration.
struct BlockSpec {
    c_in: usize,
    c_out: usize,
    reps: usize,
    stride: usize,
    start_with_relu: bool,
    grow_first: bool,
}

impl BlockSpec {
    /// `(c_in, c_out)` of each separable conv.
    fn channels(&self) -> Vec<(usize, usize)> {
        (0..self.reps)
            .map(|i| {
                if self.grow_first {
                    (if i == 0 { self.c_in } else { self.c_out }, self.c_out)
                } else {
                    (
                        self.c_in,
                        if i + 1 < self.reps {
                            self.c_in
                        } else {
                            self.c_out
                        },
                    )
                }
            })
            .collect()
    }

    fn skip(&self) -> Option<ConvBnConfig> {
        (self.c_out != self.c_in || self.stride != 1).then(|| {
            ConvBnConfig::symmetric(self.c_in, self.c_out, 1, self.stride)
                .with_activation(Activation::Identity)
        })
    }
}

/// Xception.
///
/// # Shapes
/// - input: `[batch, 3, h, w]`
/// - features: `[batch, 2048, ~h/32, ~w/32]` (ImageNet form), `[batch, 2048, h/16, w/16]` (CIFAR)
/// - pooled: `[batch, 2048]`
/// - output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct Xception {
    resize: Resize,
    /// `conv1`, `bn1`, ReLU.
    pub conv1: ConvBn,
    /// `conv2`, `bn2`, ReLU.
    pub conv2: ConvBn,
    /// `block1` .. `block12`.
    pub blocks: Vec<XceptionBlock>,
    /// `conv3`, `bn3` (then ReLU).
    pub conv3: SeparableBn,
    /// `conv4`, `bn4` (then ReLU).
    pub conv4: SeparableBn,
    /// Global average pool and the output layer (timm `fc`).
    pub head: PoolClassifier,
}

impl XceptionConfig {
    fn stem(&self) -> [ConvBnConfig; 2] {
        let [c, ..] = self.input;
        let (w1, w2) = (self.widths[0], self.widths[1]);
        match self.form {
            Form::Imagenet => [
                ConvBnConfig::new(c, w1).with_stride(2).with_padding([0; 4]),
                ConvBnConfig::new(w1, w2).with_padding([0; 4]),
            ],
            Form::Cifar => [
                ConvBnConfig::symmetric(c, w1, 3, 1),
                ConvBnConfig::symmetric(w1, w2, 3, 1),
            ],
        }
    }

    fn blocks(&self) -> Vec<BlockSpec> {
        let w = &self.widths;
        let block = |c_in, c_out, reps, stride, start_with_relu, grow_first| BlockSpec {
            c_in,
            c_out,
            reps,
            stride,
            start_with_relu,
            grow_first,
        };
        let mut blocks = vec![
            block(w[1], w[2], 2, 2, false, true),
            block(w[2], w[3], 2, 2, true, true),
            block(w[3], w[4], 2, 2, true, true),
        ];
        for _ in 0..self.middle_blocks {
            blocks.push(block(w[4], w[5], 3, 1, true, true));
        }
        let c_mid = if self.middle_blocks > 0 { w[5] } else { w[4] };
        blocks.push(block(c_mid, w[6], 2, 2, true, false));
        blocks
    }

    fn backbone_input(&self) -> [usize; 3] {
        let [c, h, w] = self.input;
        self.resize.map_or([c, h, w], |s| [c, s, s])
    }

    /// Walks the backbone, returning its output shape and FLOPs.
    fn walk(&self) -> ([usize; 3], u64) {
        let [_, h, w] = self.backbone_input();
        let mut hw = [h, w];
        let mut flops = 0;
        for conv in self.stem() {
            flops += conv.flops(hw);
            hw = conv.output_hw(hw);
        }
        for block in self.blocks() {
            for (c_in, c_out) in block.channels() {
                flops += SeparableConvConfig::new(c_in, c_out).flops(hw);
            }
            let out = if block.stride > 1 {
                hw.map(|s| cost::conv_out(s, 3, block.stride, 2))
            } else {
                hw
            };
            if let Some(skip) = block.skip() {
                flops += skip.flops(hw);
            }
            hw = out;
        }
        let w = &self.widths;
        flops += SeparableConvConfig::new(w[6], w[7]).flops(hw)
            + SeparableConvConfig::new(w[7], w[8]).flops(hw);
        ([w[8], hw[0], hw[1]], flops)
    }

    fn head(&self) -> PoolClassifierConfig {
        PoolClassifierConfig::new(self.widths[8], self.num_classes)
    }
}

impl ImageClassifierConfig for XceptionConfig {
    type Network = Xception;

    /// `[channels, height, width]` of the backbone's output.
    fn feature_shape(&self) -> [usize; 3] {
        self.walk().0
    }

    /// Checks the configuration.
    fn validate(&self) -> Result<()> {
        if self.widths.len() != 9 || self.widths.contains(&0) {
            return Err(Error::invalid("xception", "needs 9 non-zero widths"));
        }
        // The stem alone must leave a map for the blocks; each down-sampling block then keeps
        // at least one pixel (ceil).
        let [_, h, w] = self.backbone_input();
        let stem_out = self.stem().iter().fold([h, w], |hw, c| c.output_hw(hw));
        if stem_out.contains(&0) {
            return Err(Error::invalid(
                "--resize",
                format!(
                    "a {h}x{w} input is too small for Xception's {:?} stem",
                    self.form
                ),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<Xception> {
        self.validate()?;
        let [c1, c2] = self.stem();
        let w = &self.widths;
        Ok(Xception {
            resize: Resize::new(self.resize),
            conv1: c1.init(device),
            conv2: c2.init(device),
            blocks: self
                .blocks()
                .iter()
                .map(|b| XceptionBlock {
                    reps: b
                        .channels()
                        .into_iter()
                        .map(|(i, o)| SeparableBn::new(i, o, device))
                        .collect(),
                    pool: (b.stride > 1).then(|| {
                        MaxPool2dConfig::new([3, 3])
                            .with_strides([b.stride, b.stride])
                            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                            .init()
                    }),
                    skip: b.skip().map(|s| s.init(device)),
                    start_with_relu: b.start_with_relu,
                })
                .collect(),
            conv3: SeparableBn::new(w[6], w[7], device),
            conv4: SeparableBn::new(w[7], w[8], device),
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image.
    fn flops(&self) -> u64 {
        self.walk().1 + self.head().flops()
    }

    /// Names of the layers (`conv1`, `conv2`, `block1` .. `block12`, `conv3`, `conv4`).
    fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["conv1".to_string(), "conv2".to_string()];
        names.extend((1..=self.blocks().len()).map(|i| format!("block{i}")));
        names.extend(["conv3".to_string(), "conv4".to_string()]);
        names
    }
}

impl ImageClassifier for Xception {
    type Head = PoolClassifier;

    /// The backbone, showing each named layer's output (see `layer_names`) to `tap`.
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        let x = self.resize.forward(images); // [batch, 3, h, w]
        let x = tap.layer("conv1", self.conv1.forward(x)); // [batch, 32, h/2, w/2] (ImageNet form)
        let mut x = tap.layer("conv2", self.conv2.forward(x)); // [batch, 64, ...]
        for (i, block) in self.blocks.iter().enumerate() {
            x = tap.layer(&format!("block{}", i + 1), block.forward(x)); // [batch, 128 .. 1024, ...]
        }
        let x = tap.layer("conv3", relu(self.conv3.forward(x))); // [batch, 1536, ...]
        tap.layer("conv4", relu(self.conv4.forward(x))) // [batch, 2048, ...]
    }

    fn head(&self) -> &Self::Head {
        &self.head
    }

    /// Freezes the backbone (weights and BatchNorm statistics); the head stays trainable.
    fn freeze_backbone(self) -> Self {
        Self {
            conv1: self.conv1.freeze(),
            conv2: self.conv2.freeze(),
            blocks: self.blocks.freeze(),
            conv3: self.conv3.freeze(),
            conv4: self.conv4.freeze(),
            ..self
        }
    }
}
