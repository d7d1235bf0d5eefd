//! VGG-16 (Simonyan & Zisserman, 2015), with and without BatchNorm, as torchvision defines it
//! (`vgg16`, `vgg16_bn`): 13 3x3 convs in 5 stages of (2, 2, 3, 3, 3), each stage ending in a
//! 2x2 max-pool, then a classifier of two 4096-wide hidden layers.
//!
//! Forms (`--form`):
//! - `imagenet`: torchvision's: the feature map is average-pooled to 7x7 (`AdaptiveAvgPool2d`)
//!   and flattened (25,088 values) into `Linear(25088, 4096) -> ReLU -> Dropout ->
//!   Linear(4096, 4096) -> ReLU -> Dropout -> Linear(4096, classes)`.
//! - `cifar`: the same 13 convs (VGG's first conv is already 3x3 and stride 1, so nothing
//!   down-samples early); five pools take 32x32 to 1x1, the map is average-pooled to 1x1 and
//!   the classifier's hidden layers are 512 wide (the common CIFAR VGG-16), 15.0M parameters
//!   instead of 138M.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::Form;
use crate::error::{Error, Result};
use crate::model::blocks::Resize;
use crate::model::blocks::conv_bn::KAIMING_FAN_OUT;
use crate::model::family::{ClassifierHead, ImageClassifier, ImageClassifierConfig};
use crate::model::tap::LayerTap;
use crate::model::{cost, ops};

/// Configuration of a [`Vgg`].
#[derive(Config, Debug)]
pub struct VggConfig {
    /// Classes to predict.
    pub num_classes: usize,
    /// Input `[channels, height, width]` (before `resize`).
    #[config(default = "[3, 224, 224]")]
    pub input: [usize; 3],
    /// ImageNet or CIFAR form.
    #[config(default = "Form::Imagenet")]
    pub form: Form,
    /// BatchNorm after every conv (`vgg16_bn`).
    #[config(default = false)]
    pub batch_norm: bool,
    /// Conv width of each stage.
    #[config(default = "vec![64, 128, 256, 512, 512]")]
    pub widths: Vec<usize>,
    /// Convs per stage (VGG-16: 2, 2, 3, 3, 3).
    #[config(default = "vec![2, 2, 3, 3, 3]")]
    pub depths: Vec<usize>,
    /// Width of the classifier's two hidden layers (default: 4096 ImageNet, 512 CIFAR).
    #[config(default = "None")]
    pub hidden: Option<usize>,
    /// Dropout in the classifier.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// Resize inputs to this square side first.
    #[config(default = "None")]
    pub resize: Option<usize>,
}

/// One VGG conv: 3x3, padding 1, with bias, optional BatchNorm, then ReLU.
#[derive(Module, Debug)]
pub struct VggConv {
    /// The 3x3 conv.
    pub conv: Conv2d,
    /// BatchNorm (`vgg16_bn` only).
    pub norm: Option<BatchNorm>,
}

impl VggConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = ops::conv::forward(&self.conv, x);
        relu(match &self.norm {
            Some(norm) => ops::batch_norm::forward(norm, x),
            None => x,
        })
    }
}

/// VGG's classifier: adaptive average pool, then three linear layers.
#[derive(Module, Debug)]
pub struct VggHead {
    pool: AdaptiveAvgPool2d,
    /// First hidden layer (torchvision `classifier.0`).
    pub fc1: Linear,
    /// Second hidden layer (`classifier.3`).
    pub fc2: Linear,
    /// Output layer (`classifier.6`).
    pub fc3: Linear,
    dropout: Dropout,
}

impl ClassifierHead for VggHead {
    /// Adaptive average pool, flatten: `[batch, 512, h, w] -> [batch, 512 * side^2]`.
    fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        self.pool.forward(features).flatten(1, 3)
    }

    /// `fc1 -> ReLU -> dropout -> fc2 -> ReLU -> dropout -> fc3`.
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        let x = self.dropout.forward(relu(self.fc1.forward(pooled))); // [batch, hidden]
        let x = self.dropout.forward(relu(self.fc2.forward(x))); // [batch, hidden]
        self.fc3.forward(x) // [batch, num_classes]
    }
}

/// VGG-16.
///
/// # Shapes
/// - input: `[batch, 3, h, w]`
/// - features: `[batch, 512, h/32, w/32]`
/// - pooled: `[batch, 512 * 7 * 7]` (ImageNet form) or `[batch, 512]` (CIFAR form)
/// - output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct Vgg {
    resize: Resize,
    /// Convs of each stage; a 2x2 max-pool ends every stage.
    pub stages: Vec<Vec<VggConv>>,
    pool: MaxPool2d,
    /// The classifier.
    pub head: VggHead,
}

impl VggConfig {
    fn hidden_width(&self) -> usize {
        self.hidden.unwrap_or(match self.form {
            Form::Imagenet => 4096,
            Form::Cifar => 512,
        })
    }

    /// Side of the adaptive average pool before the classifier.
    fn pool_side(&self) -> usize {
        match self.form {
            Form::Imagenet => 7,
            Form::Cifar => 1,
        }
    }

    /// `[c, h, w]` the backbone sees (after resizing).
    fn backbone_input(&self) -> [usize; 3] {
        let [c, h, w] = self.input;
        self.resize.map_or([c, h, w], |s| [c, s, s])
    }

    /// Values per image after the head's pooling (the classifier's input).
    pub fn pooled_dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(0) * self.pool_side() * self.pool_side()
    }
}

impl ImageClassifierConfig for VggConfig {
    type Network = Vgg;

    /// `[channels, height, width]` of the backbone's output.
    fn feature_shape(&self) -> [usize; 3] {
        let [_, mut h, mut w] = self.backbone_input();
        for _ in &self.widths {
            h = cost::pooled(h);
            w = cost::pooled(w);
        }
        [*self.widths.last().unwrap_or(&0), h, w]
    }

    /// Checks the configuration.
    fn validate(&self) -> Result<()> {
        if self.widths.is_empty()
            || self.widths.len() != self.depths.len()
            || self.widths.contains(&0)
            || self.depths.contains(&0)
        {
            return Err(Error::invalid(
                "vgg",
                "widths and depths need one non-zero entry per stage",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(
                "--dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        let [_, h, w] = self.feature_shape();
        if h == 0 || w == 0 {
            let [_, ih, iw] = self.backbone_input();
            return Err(Error::invalid(
                "--resize",
                format!("VGG's five 2x2 pools need inputs of at least 32x32, not {ih}x{iw}"),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<Vgg> {
        self.validate()?;
        let mut c_in = self.input[0];
        let mut stages = Vec::new();
        for (&width, &depth) in self.widths.iter().zip(&self.depths) {
            let mut convs = Vec::new();
            for _ in 0..depth {
                convs.push(VggConv {
                    conv: Conv2dConfig::new([c_in, width], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_initializer(KAIMING_FAN_OUT)
                        .init(device),
                    norm: self
                        .batch_norm
                        .then(|| BatchNormConfig::new(width).init(device)),
                });
                c_in = width;
            }
            stages.push(convs);
        }
        let hidden = self.hidden_width();
        // torchvision initialises the classifier with N(0, 0.01).
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.01,
                })
                .init(device)
        };
        Ok(Vgg {
            resize: Resize::new(self.resize),
            stages,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            head: VggHead {
                pool: AdaptiveAvgPool2dConfig::new([self.pool_side(), self.pool_side()]).init(),
                fc1: linear(self.pooled_dim(), hidden),
                fc2: linear(hidden, hidden),
                fc3: linear(hidden, self.num_classes),
                dropout: DropoutConfig::new(self.dropout).init(),
            },
        })
    }

    /// Forward FLOPs per image.
    fn flops(&self) -> u64 {
        let [mut c_in, mut h, mut w] = self.backbone_input();
        let mut total = 0;
        for (&width, &depth) in self.widths.iter().zip(&self.depths) {
            for _ in 0..depth {
                total += cost::conv2d_flops(c_in, width, [3, 3], 1, [h, w]);
                c_in = width;
            }
            h = cost::pooled(h);
            w = cost::pooled(w);
        }
        let hidden = self.hidden_width();
        total
            + cost::linear_flops(self.pooled_dim(), hidden)
            + cost::linear_flops(hidden, hidden)
            + cost::linear_flops(hidden, self.num_classes)
    }

    /// Names of the stages (`stage1` .. `stage5`).
    fn layer_names(&self) -> Vec<String> {
        (1..=self.widths.len())
            .map(|i| format!("stage{i}"))
            .collect()
    }
}

impl ImageClassifier for Vgg {
    type Head = VggHead;

    /// The backbone, showing each named layer's output (see `layer_names`) to `tap`.
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        let mut x = self.resize.forward(images); // [batch, 3, h, w]
        for (s, stage) in self.stages.iter().enumerate() {
            for conv in stage {
                x = conv.forward(x); // [batch, width, h, w]
            }
            x = tap.layer(&format!("stage{}", s + 1), x); // the stage's last activation, before its pool
            x = ops::max_pool::forward(&self.pool, x); // [batch, width, h/2, w/2]
        }
        x // [batch, 512, h/32, w/32]
    }

    fn head(&self) -> &Self::Head {
        &self.head
    }

    /// Freezes the backbone (weights and BatchNorm statistics); the head stays trainable.
    fn freeze_backbone(self) -> Self {
        Self {
            stages: self.stages.freeze(),
            ..self
        }
    }
}
