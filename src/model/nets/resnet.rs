//! ResNet-50 (He et al., 2016) as torchvision defines it (`resnet50`, "ResNet v1.5": the
//! stride sits on the bottleneck's 3x3 conv): a 7x7 stride-2 stem and 3x3 stride-2 max-pool,
//! then four stages of (3, 4, 6, 3) bottlenecks (1x1 reduce, 3x3, 1x1 expand by 4, plus an
//! identity or 1x1-projection shortcut), global average pool, one linear layer.
//!
//! Forms (`--form`):
//! - `imagenet`: torchvision's; a 224x224 input leaves a 7x7 map, a 32x32 one 1x1.
//! - `cifar`: the stem is a 3x3 stride-1 conv without the max-pool (as in He et al.'s CIFAR
//!   experiments and common CIFAR ResNets), so 32x32 inputs leave a 4x4 map.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::Form;
use crate::error::{Error, Result};
use crate::model::blocks::conv_bn::{Activation, ConvBn, ConvBnConfig};
use crate::model::blocks::{PoolClassifier, PoolClassifierConfig, Resize};
use crate::model::family::{ImageClassifier, ImageClassifierConfig};
use crate::model::tap::LayerTap;
use crate::model::{cost, ops};

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Classes to predict.
    pub num_classes: usize,
    /// Input `[channels, height, width]` (before `resize`).
    #[config(default = "[3, 224, 224]")]
    pub input: [usize; 3],
    /// ImageNet or CIFAR form.
    #[config(default = "Form::Imagenet")]
    pub form: Form,
    /// Channels of the stem conv.
    #[config(default = 64)]
    pub stem_width: usize,
    /// Bottleneck width ("planes") of each stage; blocks output 4x this.
    #[config(default = "vec![64, 128, 256, 512]")]
    pub widths: Vec<usize>,
    /// Bottlenecks per stage (ResNet-50: 3, 4, 6, 3).
    #[config(default = "vec![3, 4, 6, 3]")]
    pub depths: Vec<usize>,
    /// Resize inputs to this square side first.
    #[config(default = "None")]
    pub resize: Option<usize>,
}

/// Output channels of a bottleneck per unit of its width.
const EXPANSION: usize = 4;

/// A bottleneck: 1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand, added to the shortcut,
/// then ReLU.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, 4 * width, h / stride, w / stride]`
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1, `c_in -> width`.
    pub conv1: ConvBn,
    /// 3x3, `width -> width`, stride.
    pub conv2: ConvBn,
    /// 1x1, `width -> 4 * width`, no activation.
    pub conv3: ConvBn,
    /// 1x1 projection of the input when its shape changes (torchvision `downsample`).
    pub downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x.clone()), // [batch, 4w, h', w']
            None => x.clone(),
        };
        let y = self.conv1.forward(x); // [batch, w, h, w]
        let y = self.conv2.forward(y); // [batch, w, h', w']
        relu(self.conv3.forward(y) + shortcut) // [batch, 4w, h', w']
    }
}

/// One bottleneck's configuration.
struct BlockSpec {
    c_in: usize,
    width: usize,
    stride: usize,
}

impl BlockSpec {
    fn convs(&self) -> [ConvBnConfig; 3] {
        [
            ConvBnConfig::symmetric(self.c_in, self.width, 1, 1),
            ConvBnConfig::symmetric(self.width, self.width, 3, self.stride),
            ConvBnConfig::symmetric(self.width, self.width * EXPANSION, 1, 1)
                .with_activation(Activation::Identity),
        ]
    }

    fn downsample(&self) -> Option<ConvBnConfig> {
        (self.stride != 1 || self.c_in != self.width * EXPANSION).then(|| {
            ConvBnConfig::symmetric(self.c_in, self.width * EXPANSION, 1, self.stride)
                .with_activation(Activation::Identity)
        })
    }
}

/// ResNet-50.
///
/// # Shapes
/// - input: `[batch, 3, h, w]`
/// - features: `[batch, 2048, h/32, w/32]` (ImageNet form) or `[batch, 2048, h/8, w/8]` (CIFAR)
/// - pooled: `[batch, 2048]`
/// - output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct ResNet {
    resize: Resize,
    /// The stem conv (torchvision `conv1`, `bn1`).
    pub stem: ConvBn,
    stem_pool: Option<MaxPool2d>,
    /// Bottlenecks of each stage (torchvision `layer1` .. `layer4`).
    pub stages: Vec<Vec<Bottleneck>>,
    /// Global average pool and the output layer (torchvision `fc`).
    pub head: PoolClassifier,
}

impl ResNetConfig {
    fn stem(&self) -> ConvBnConfig {
        match self.form {
            Form::Imagenet => ConvBnConfig::symmetric(self.input[0], self.stem_width, 7, 2),
            Form::Cifar => ConvBnConfig::symmetric(self.input[0], self.stem_width, 3, 1),
        }
    }

    fn blocks(&self) -> Vec<Vec<BlockSpec>> {
        let mut c_in = self.stem_width;
        let mut stages = Vec::new();
        for (s, (&width, &depth)) in self.widths.iter().zip(&self.depths).enumerate() {
            let mut blocks = Vec::new();
            for b in 0..depth {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BlockSpec {
                    c_in,
                    width,
                    stride,
                });
                c_in = width * EXPANSION;
            }
            stages.push(blocks);
        }
        stages
    }

    fn backbone_input(&self) -> [usize; 3] {
        let [c, h, w] = self.input;
        self.resize.map_or([c, h, w], |s| [c, s, s])
    }

    /// Walks the backbone, returning its output shape and FLOPs.
    fn walk(&self) -> ([usize; 3], u64) {
        let [_, h, w] = self.backbone_input();
        let stem = self.stem();
        let mut flops = stem.flops([h, w]);
        let mut hw = stem.output_hw([h, w]);
        if self.form == Form::Imagenet {
            hw = hw.map(|s| cost::conv_out(s, 3, 2, 2)); // 3x3 max-pool, stride 2, padding 1
        }
        let mut c = self.stem_width;
        for block in self.blocks().iter().flatten() {
            let [c1, c2, c3] = block.convs();
            flops += c1.flops(hw);
            let mid = c1.output_hw(hw);
            flops += c2.flops(mid);
            let out = c2.output_hw(mid);
            flops += c3.flops(out);
            if let Some(d) = block.downsample() {
                flops += d.flops(hw);
            }
            hw = out;
            c = block.width * EXPANSION;
        }
        ([c, hw[0], hw[1]], flops)
    }

    fn head(&self) -> PoolClassifierConfig {
        PoolClassifierConfig::new(self.feature_shape()[0], self.num_classes)
    }
}

impl ImageClassifierConfig for ResNetConfig {
    type Network = ResNet;

    /// `[channels, height, width]` of the backbone's output.
    fn feature_shape(&self) -> [usize; 3] {
        self.walk().0
    }

    /// Checks the configuration.
    fn validate(&self) -> Result<()> {
        if self.widths.is_empty()
            || self.widths.len() != self.depths.len()
            || self.widths.contains(&0)
            || self.depths.contains(&0)
            || self.stem_width == 0
        {
            return Err(Error::invalid(
                "resnet",
                "widths and depths need one non-zero entry per stage",
            ));
        }
        let [_, h, w] = self.feature_shape();
        if h == 0 || w == 0 {
            let [_, ih, iw] = self.backbone_input();
            return Err(Error::invalid(
                "--resize",
                format!(
                    "a {ih}x{iw} input is too small for ResNet's {:?} form",
                    self.form
                ),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<ResNet> {
        self.validate()?;
        Ok(ResNet {
            resize: Resize::new(self.resize),
            stem: self.stem().init(device),
            stem_pool: (self.form == Form::Imagenet).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            stages: self
                .blocks()
                .iter()
                .map(|stage| {
                    stage
                        .iter()
                        .map(|b| {
                            let [c1, c2, c3] = b.convs();
                            Bottleneck {
                                conv1: c1.init(device),
                                conv2: c2.init(device),
                                conv3: c3.init(device),
                                downsample: b.downsample().map(|d| d.init(device)),
                            }
                        })
                        .collect()
                })
                .collect(),
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image.
    fn flops(&self) -> u64 {
        self.walk().1 + self.head().flops()
    }

    /// Names of the stages (`stem`, `layer1` .. `layer4`).
    fn layer_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((1..=self.widths.len()).map(|i| format!("layer{i}")))
            .collect()
    }
}

impl ImageClassifier for ResNet {
    type Head = PoolClassifier;

    /// The backbone, showing each named layer's output (see `layer_names`) to `tap`.
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        let x = self.resize.forward(images); // [batch, 3, h, w]
        let mut x = tap.layer("stem", self.stem.forward(x)); // [batch, 64, h/2, w/2] (ImageNet form)
        if let Some(pool) = &self.stem_pool {
            x = ops::max_pool::forward(pool, x); // [batch, 64, h/4, w/4]
        }
        for (s, stage) in self.stages.iter().enumerate() {
            for block in stage {
                x = block.forward(x); // [batch, 256 .. 2048, ...]
            }
            x = tap.layer(&format!("layer{}", s + 1), x);
        }
        x // [batch, 2048, h/32, w/32]
    }

    fn head(&self) -> &Self::Head {
        &self.head
    }

    /// Freezes the backbone (weights and BatchNorm statistics); the head stays trainable.
    fn freeze_backbone(self) -> Self {
        Self {
            stem: self.stem.freeze(),
            stages: self.stages.freeze(),
            ..self
        }
    }
}
