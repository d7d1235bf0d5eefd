//! EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variants of the TensorFlow TPU repository):
//! EfficientNet-B0's mobile inverted-bottleneck (MBConv) blocks with the parts that quantise
//! badly removed: ReLU6 instead of swish, no squeeze-and-excitation, and a stem and head that do
//! not scale. Ported as the lukemelas-style PyTorch model its weights come from
//! (`../shared/weights/efficientnet-lite0/`):
//!
//! - BatchNorm epsilon 1e-3 and momentum 0.01 (TensorFlow's 0.99);
//! - TensorFlow "SAME" padding fixed at construction for the configured input size, so a
//!   stride-2 conv on an even map pads one pixel more on the right and bottom (the stem on
//!   224x224: 0 before, 1 after);
//! - stochastic depth ("drop connect") on every identity-shortcut block, rate 0.2 scaled by the
//!   block's index over the 16 blocks, in training only;
//! - head: 1x1 conv to 1280 -> BatchNorm -> ReLU6 -> global average pool -> dropout 0.2 -> linear.
//!
//! Forms (`--form`):
//! - `imagenet`: the original; a 224x224 input leaves a 7x7 map, a 32x32 one 1x1.
//! - `cifar`: the stem conv has stride 1, so 32x32 inputs leave a 2x2 map.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::Form;
use crate::error::{Error, Result};
use crate::model::blocks::conv_bn::{Activation, ConvBn, ConvBnConfig, same_padding};
use crate::model::blocks::{PoolClassifier, PoolClassifierConfig, Resize};
use crate::model::family::{ImageClassifier, ImageClassifierConfig};
use crate::model::tap::LayerTap;

/// BatchNorm epsilon of the TensorFlow-trained weights.
const BN_EPS: f64 = 1e-3;
/// BatchNorm momentum (PyTorch convention) matching TensorFlow's decay of 0.99.
const BN_MOMENTUM: f64 = 0.01;

/// One stage of EfficientNet-B0 / Lite0: `(repeats, kernel, stride, expand ratio, c_in, c_out)`.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
/// Stem and head widths (fixed in the Lite variants).
const STEM_WIDTH: usize = 32;
const HEAD_WIDTH: usize = 1280;

/// Configuration of an [`EfficientNetLite`].
#[derive(Config, Debug)]
pub struct EfficientNetLiteConfig {
    /// Classes to predict.
    pub num_classes: usize,
    /// Input `[channels, height, width]` (before `resize`); fixes the SAME padding.
    #[config(default = "[3, 224, 224]")]
    pub input: [usize; 3],
    /// ImageNet or CIFAR form.
    #[config(default = "Form::Imagenet")]
    pub form: Form,
    /// Dropout before the output layer.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Stochastic-depth rate of the last block (block `i` of 16 drops with `rate * i / 16`).
    #[config(default = 0.2)]
    pub drop_connect: f64,
    /// Resize inputs to this square side first.
    #[config(default = "None")]
    pub resize: Option<usize>,
}

/// A mobile inverted bottleneck: 1x1 expand (ReLU6) -> k x k depthwise (ReLU6, carries the
/// stride) -> 1x1 project (linear), plus the input when shapes allow (with stochastic depth).
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c_out, ceil(h / stride), ceil(w / stride)]`
#[derive(Module, Debug)]
pub struct MbConv {
    /// 1x1 expansion by the expand ratio (absent when it is 1); lukemelas `_expand_conv`, `_bn0`.
    pub expand: Option<ConvBn>,
    /// Depthwise conv; `_depthwise_conv`, `_bn1`.
    pub depthwise: ConvBn,
    /// 1x1 projection, no activation; `_project_conv`, `_bn2`.
    pub project: ConvBn,
    /// Whether the input is added back (stride 1, same width).
    shortcut: bool,
    /// Stochastic depth on the residual branch (probability 0 disables it).
    drop_connect: Dropout,
}

impl MbConv {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = match &self.expand {
            Some(expand) => expand.forward(input.clone()), // [batch, c_in * e, h, w]
            None => input.clone(),
        };
        let x = self.depthwise.forward(x); // [batch, c_in * e, h', w']
        let x = self.project.forward(x); // [batch, c_out, h', w']
        if !self.shortcut {
            return x;
        }
        // One keep/drop draw per image, rescaled by 1 / keep; identity in inference.
        let [batch, ..] = x.dims();
        let mask = self
            .drop_connect
            .forward(Tensor::<4>::ones([batch, 1, 1, 1], &x.device()));
        x * mask + input // [batch, c_out, h, w]
    }
}

/// One block's configuration, with its input size (SAME padding depends on it).
struct BlockSpec {
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    hw: [usize; 2],
    index: usize,
}

impl BlockSpec {
    fn hidden(&self) -> usize {
        self.c_in * self.expand
    }

    fn expand_conv(&self) -> Option<ConvBnConfig> {
        (self.expand != 1).then(|| conv(self.c_in, self.hidden(), 1, 1, self.hw, Activation::Relu6))
    }

    fn depthwise(&self) -> ConvBnConfig {
        conv(
            self.hidden(),
            self.hidden(),
            self.kernel,
            self.stride,
            self.hw,
            Activation::Relu6,
        )
        .with_groups(self.hidden())
    }

    fn project(&self) -> ConvBnConfig {
        let out = self.depthwise().output_hw(self.hw);
        conv(self.hidden(), self.c_out, 1, 1, out, Activation::Identity)
    }

    fn has_shortcut(&self) -> bool {
        self.stride == 1 && self.c_in == self.c_out
    }
}

/// A conv with BatchNorm (eps 1e-3) and SAME padding for an input of `hw`.
fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    hw: [usize; 2],
    act: Activation,
) -> ConvBnConfig {
    let (top, bottom) = same_padding(hw[0], kernel, stride);
    let (left, right) = same_padding(hw[1], kernel, stride);
    ConvBnConfig::new(c_in, c_out)
        .with_kernel(kernel)
        .with_stride(stride)
        .with_padding([top, left, bottom, right])
        .with_bn_eps(BN_EPS)
        .with_bn_momentum(BN_MOMENTUM)
        .with_activation(act)
}

/// EfficientNet-Lite0.
///
/// # Shapes
/// - input: `[batch, 3, h, w]`
/// - features: `[batch, 1280, h/32, w/32]` (ImageNet form) or `[batch, 1280, h/16, w/16]` (CIFAR)
/// - pooled: `[batch, 1280]`
/// - output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    resize: Resize,
    /// `_conv_stem`, `_bn0`, ReLU6.
    pub stem: ConvBn,
    /// The 16 MBConv blocks (`_blocks`).
    pub blocks: Vec<MbConv>,
    /// `_conv_head`, `_bn1`, ReLU6.
    pub head_conv: ConvBn,
    /// Global average pool, dropout and the output layer (`_fc`).
    pub head: PoolClassifier,
}

impl EfficientNetLiteConfig {
    fn backbone_input(&self) -> [usize; 3] {
        let [c, h, w] = self.input;
        self.resize.map_or([c, h, w], |s| [c, s, s])
    }

    fn stem(&self) -> ConvBnConfig {
        let [c, h, w] = self.backbone_input();
        let stride = match self.form {
            Form::Imagenet => 2,
            Form::Cifar => 1,
        };
        conv(c, STEM_WIDTH, 3, stride, [h, w], Activation::Relu6)
    }

    fn blocks(&self) -> Vec<BlockSpec> {
        let [_, h, w] = self.backbone_input();
        let mut hw = self.stem().output_hw([h, w]);
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expand, c_in, c_out) in STAGES {
            for r in 0..repeats {
                let block = BlockSpec {
                    c_in: if r == 0 { c_in } else { c_out },
                    c_out,
                    kernel,
                    stride: if r == 0 { stride } else { 1 },
                    expand,
                    hw,
                    index: blocks.len(),
                };
                hw = block.depthwise().output_hw(hw);
                blocks.push(block);
            }
        }
        blocks
    }

    fn head_conv(&self, hw: [usize; 2]) -> ConvBnConfig {
        conv(STAGES[6].5, HEAD_WIDTH, 1, 1, hw, Activation::Relu6)
    }

    /// Walks the backbone, returning its output shape and FLOPs.
    fn walk(&self) -> ([usize; 3], u64) {
        let [_, h, w] = self.backbone_input();
        let stem = self.stem();
        let mut flops = stem.flops([h, w]);
        let mut hw = stem.output_hw([h, w]);
        for block in self.blocks() {
            if let Some(e) = block.expand_conv() {
                flops += e.flops(hw);
            }
            let dw = block.depthwise();
            flops += dw.flops(hw);
            hw = dw.output_hw(hw);
            flops += block.project().flops(hw);
        }
        flops += self.head_conv(hw).flops(hw);
        ([HEAD_WIDTH, hw[0], hw[1]], flops)
    }

    fn head(&self) -> PoolClassifierConfig {
        PoolClassifierConfig::new(HEAD_WIDTH, self.num_classes).with_dropout(self.dropout)
    }

    /// Whether each block has an expansion conv (expand ratio above 1).
    pub fn block_expands(&self) -> Vec<bool> {
        self.blocks().iter().map(|b| b.expand != 1).collect()
    }
}

impl ImageClassifierConfig for EfficientNetLiteConfig {
    type Network = EfficientNetLite;

    /// `[channels, height, width]` of the backbone's output.
    fn feature_shape(&self) -> [usize; 3] {
        self.walk().0
    }

    /// Checks the configuration.
    fn validate(&self) -> Result<()> {
        for (name, p) in [
            ("--dropout", self.dropout),
            ("drop_connect", self.drop_connect),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid(name, format!("{p} is not in [0, 1)")));
            }
        }
        if self.backbone_input()[1..].contains(&0) {
            return Err(Error::invalid(
                "--resize",
                "the input needs at least one pixel",
            ));
        }
        Ok(())
    }

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<EfficientNetLite> {
        self.validate()?;
        let specs = self.blocks();
        let n = specs.len() as f64;
        let blocks = specs
            .iter()
            .map(|b| MbConv {
                expand: b.expand_conv().map(|c| c.init(device)),
                depthwise: b.depthwise().init(device),
                project: b.project().init(device),
                shortcut: b.has_shortcut(),
                drop_connect: DropoutConfig::new(self.drop_connect * b.index as f64 / n).init(),
            })
            .collect();
        let [_, fh, fw] = self.feature_shape();
        Ok(EfficientNetLite {
            resize: Resize::new(self.resize),
            stem: self.stem().init(device),
            blocks,
            head_conv: self.head_conv([fh, fw]).init(device),
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image.
    fn flops(&self) -> u64 {
        self.walk().1 + self.head().flops()
    }

    /// Names of the layers (`stem`, `block1` .. `block16`, `head_conv`).
    fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string()];
        names.extend((1..=self.blocks().len()).map(|i| format!("block{i}")));
        names.push("head_conv".to_string());
        names
    }
}

impl ImageClassifier for EfficientNetLite {
    type Head = PoolClassifier;

    /// The backbone, showing each named layer's output (see `layer_names`) to `tap`.
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        let x = self.resize.forward(images); // [batch, 3, h, w]
        let mut x = tap.layer("stem", self.stem.forward(x)); // [batch, 32, h/2, w/2] (ImageNet form)
        for (i, block) in self.blocks.iter().enumerate() {
            x = tap.layer(&format!("block{}", i + 1), block.forward(x)); // [batch, 16 .. 320, ...]
        }
        tap.layer("head_conv", self.head_conv.forward(x)) // [batch, 1280, h/32, w/32]
    }

    fn head(&self) -> &Self::Head {
        &self.head
    }

    /// Freezes the backbone (weights and BatchNorm statistics); the head stays trainable.
    fn freeze_backbone(self) -> Self {
        Self {
            stem: self.stem.freeze(),
            blocks: self.blocks.freeze(),
            head_conv: self.head_conv.freeze(),
            ..self
        }
    }
}
