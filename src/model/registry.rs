//! The model registry: every model the CLI can train, by name.
//!
//! A model is a name plus [`ModelOptions`]; [`network_config`] turns both into a
//! [`NetworkConfig`] that builds the network and counts its cost.

use burn::prelude::*;

use super::blocks::{ConvKind, LateralKind};
use super::nets::{
    Cnn, CnnConfig, EfficientNetLite, EfficientNetLiteConfig, Form, ResNet, ResNetConfig, Vgg, VggConfig, Xception,
    XceptionConfig,
};
use crate::error::{Error, Result};

/// Architecture options shared by the study's CNNs (flags of `train`, keys of its config file).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(default, rename_all = "kebab-case")]
pub struct ModelOptions {
    /// Output channels of each conv layer of the study's CNN, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_values_t = ModelOptions::default().widths)]
    pub widths: Vec<usize>,
    /// Whether a 2x2 max-pool follows each conv layer, comma-separated (one per conv layer).
    #[arg(long, value_delimiter = ',', num_args = 1.., default_values_t = ModelOptions::default().pool,
          action = clap::ArgAction::Set)]
    pub pool: Vec<bool>,
    /// Widths of the classifier's hidden layers, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_values_t = ModelOptions::default().hidden)]
    pub hidden: Vec<usize>,
    /// Dropout probability in the classifier (0 disables it). The baselines keep their
    /// reference dropout.
    #[arg(long, default_value_t = ModelOptions::default().dropout)]
    pub dropout: f64,
    /// cnn: conv units per stage (per `--widths` entry); lateral connections link them.
    #[arg(long, default_value_t = ModelOptions::default().stage_depth, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub stage_depth: u64,
    /// cnn: lateral connections within a stage: none, residual (identity / 1x1 projection
    /// shortcuts), dense (each unit sees all earlier maps of its stage).
    #[arg(long, value_enum, default_value_t = ModelOptions::default().lateral)]
    pub lateral: LateralKind,
    /// cnn: the conv of each unit: plain 3x3, inception (parallel 1x1, 3x3, double-3x3 and pool
    /// branches), separable (depthwise 3x3 + pointwise 1x1).
    #[arg(long, value_enum, default_value_t = ModelOptions::default().conv)]
    pub conv: ConvKind,
    /// Baselines: the reference ImageNet stem, or the CIFAR stem for 32x32 inputs (3x3 first
    /// conv, no early down-sampling).
    #[arg(long, value_enum, default_value_t = ModelOptions::default().form)]
    pub form: Form,
    /// Baselines: resize inputs to N x N (bilinear) before the backbone, e.g. 224 for an
    /// ImageNet backbone on 32x32 images; every conv then costs (N/32)^2 times more.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub resize: Option<u64>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            widths: vec![32, 64, 128, 256],
            pool: vec![true, true, true, true],
            hidden: vec![512, 256, 128],
            dropout: 0.0,
            stage_depth: 1,
            lateral: LateralKind::None,
            conv: ConvKind::Plain,
            form: Form::Imagenet,
            resize: None,
        }
    }
}

/// A model to build: its registry name and options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Registry name, e.g. `cnn`.
    pub name: String,
    /// Architecture options.
    pub options: ModelOptions,
}

/// A registered model.
pub struct Entry {
    /// Name on the command line.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Its configuration for `num_classes` and an input of `[c, h, w]`.
    pub config: fn(&ModelOptions, usize, [usize; 3]) -> NetworkConfig,
}

/// Every registered model.
pub const MODELS: &[Entry] = &[
    Entry {
        name: "cnn",
        summary: "the study's plain CNN: 4 x (3x3 conv, BatchNorm, ReLU, max-pool), 3 hidden FC layers",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(
                CnnConfig::new(num_classes)
                    .with_input(input)
                    .with_widths(o.widths.clone())
                    .with_pool(o.pool.clone())
                    .with_hidden(o.hidden.clone())
                    .with_dropout(o.dropout)
                    .with_stage_depth(o.stage_depth as usize)
                    .with_lateral(o.lateral)
                    .with_conv(o.conv),
            )
        },
    },
    Entry {
        name: "vgg16",
        summary: "VGG-16 (torchvision vgg16): 13 3x3 convs in 5 stages, 2 hidden FC layers",
        config: |o, num_classes, input| {
            NetworkConfig::Vgg(VggConfig::new(num_classes).with_input(input).with_form(o.form).with_resize(resize(o)))
        },
    },
    Entry {
        name: "vgg16_bn",
        summary: "VGG-16 with BatchNorm after every conv (torchvision vgg16_bn)",
        config: |o, num_classes, input| {
            NetworkConfig::Vgg(
                VggConfig::new(num_classes)
                    .with_input(input)
                    .with_form(o.form)
                    .with_batch_norm(true)
                    .with_resize(resize(o)),
            )
        },
    },
    Entry {
        name: "resnet50",
        summary: "ResNet-50 (torchvision resnet50): 16 bottlenecks in 4 stages",
        config: |o, num_classes, input| {
            NetworkConfig::ResNet(ResNetConfig::new(num_classes).with_input(input).with_form(o.form).with_resize(resize(o)))
        },
    },
    Entry {
        name: "xception",
        summary: "Xception (timm legacy_xception): 12 blocks of depthwise-separable convs",
        config: |o, num_classes, input| {
            NetworkConfig::Xception(XceptionConfig::new(num_classes).with_input(input).with_form(o.form).with_resize(resize(o)))
        },
    },
    Entry {
        name: "efficientnet_lite0",
        summary: "EfficientNet-Lite0: 16 MBConv blocks, ReLU6, no squeeze-excite (ImageNet weights in shared/)",
        config: |o, num_classes, input| {
            NetworkConfig::EfficientNetLite(
                EfficientNetLiteConfig::new(num_classes).with_input(input).with_form(o.form).with_resize(resize(o)),
            )
        },
    },
];

fn resize(o: &ModelOptions) -> Option<usize> {
    o.resize.map(|r| r as usize)
}

/// Names of all registered models.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// The registry entry called `name`.
pub fn entry(name: &str) -> Result<&'static Entry> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        Error::invalid("--model", format!("unknown model '{name}'; models: {}", names().join(", ")))
    })
}

/// The configuration of `spec` for `num_classes` classes and `[c, h, w]` inputs, validated.
pub fn network_config(spec: &ModelSpec, num_classes: usize, input: [usize; 3]) -> Result<NetworkConfig> {
    let config = (entry(&spec.name)?.config)(&spec.options, num_classes, input);
    let o = &spec.options;
    if matches!(config, NetworkConfig::Cnn(_)) {
        if o.resize.is_some() {
            return Err(Error::invalid("--resize", format!("applies to the baselines, not to '{}'", spec.name)));
        }
    } else {
        let defaults = ModelOptions::default();
        for (flag, set) in [
            ("--lateral", o.lateral != defaults.lateral),
            ("--conv", o.conv != defaults.conv),
            ("--stage-depth", o.stage_depth != defaults.stage_depth),
        ] {
            if set {
                return Err(Error::invalid(flag, format!("applies to the study's cnn, not to the baseline '{}'", spec.name)));
            }
        }
    }
    config.validate()?;
    Ok(config)
}

/// The configuration of any registered network.
#[derive(Clone, Debug)]
pub enum NetworkConfig {
    /// The study's CNN.
    Cnn(CnnConfig),
    /// VGG-16, with or without BatchNorm.
    Vgg(VggConfig),
    /// ResNet-50.
    ResNet(ResNetConfig),
    /// Xception.
    Xception(XceptionConfig),
    /// EfficientNet-Lite0.
    EfficientNetLite(EfficientNetLiteConfig),
}

/// Calls the same method on whichever configuration or network `$x` holds.
macro_rules! each {
    ($enum:ident, $x:expr, $m:ident => $body:expr) => {
        match $x {
            $enum::Cnn($m) => $body,
            $enum::Vgg($m) => $body,
            $enum::ResNet($m) => $body,
            $enum::Xception($m) => $body,
            $enum::EfficientNetLite($m) => $body,
        }
    };
}

impl NetworkConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        each!(NetworkConfig, self, c => c.validate())
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Result<Network> {
        Ok(match self {
            NetworkConfig::Cnn(c) => Network::Cnn(c.init(device)?),
            NetworkConfig::Vgg(c) => Network::Vgg(c.init(device)?),
            NetworkConfig::ResNet(c) => Network::ResNet(c.init(device)?),
            NetworkConfig::Xception(c) => Network::Xception(c.init(device)?),
            NetworkConfig::EfficientNetLite(c) => Network::EfficientNetLite(c.init(device)?),
        })
    }

    /// Forward FLOPs per image.
    pub fn flops(&self) -> u64 {
        each!(NetworkConfig, self, c => c.flops())
    }

    /// Names of the layers Grad-CAM and probes can tap, in forward order.
    pub fn layer_names(&self) -> Vec<String> {
        each!(NetworkConfig, self, c => c.layer_names())
    }

    /// `[channels, height, width]` of the backbone's output.
    pub fn feature_shape(&self) -> [usize; 3] {
        each!(NetworkConfig, self, c => c.feature_shape())
    }
}

/// Any registered network. Every network splits into a backbone (`forward_features`) and a
/// classifier head (`forward_head`); the head splits again into a parameter-free pooling
/// (`pool_features`) and the trainable classifier (`classify`), so pooled features can be
/// computed once and cached for a linear probe.
#[derive(Module, Debug)]
pub enum Network {
    /// The study's CNN.
    Cnn(Cnn),
    /// VGG-16, with or without BatchNorm.
    Vgg(Vgg),
    /// ResNet-50.
    ResNet(ResNet),
    /// Xception.
    Xception(Xception),
    /// EfficientNet-Lite0.
    EfficientNetLite(EfficientNetLite),
}

impl Network {
    /// Backbone features of a batch of images: `[batch, c, h, w] -> [batch, c', h', w']`.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        each!(Network, self, m => m.forward_features(images))
    }

    /// The head's parameter-free part: `[batch, c', h', w'] -> [batch, d]`.
    pub fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        each!(Network, self, m => m.pool_features(features))
    }

    /// The head's trainable part: `[batch, d] -> [batch, num_classes]`.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        each!(Network, self, m => m.classify(pooled))
    }

    /// Logits from backbone features.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.classify(self.pool_features(features))
    }

    /// Logits for a batch of images: `[batch, c, h, w] -> [batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(images))
    }

    /// Freezes the backbone: its weights stop receiving gradients and its BatchNorm layers use
    /// (and keep) their running statistics, so only the head trains.
    pub fn freeze_backbone(self) -> Self {
        match self {
            Network::Cnn(m) => Network::Cnn(m.freeze_backbone()),
            Network::Vgg(m) => Network::Vgg(m.freeze_backbone()),
            Network::ResNet(m) => Network::ResNet(m.freeze_backbone()),
            Network::Xception(m) => Network::Xception(m.freeze_backbone()),
            Network::EfficientNetLite(m) => Network::EfficientNetLite(m.freeze_backbone()),
        }
    }
}

/// Counts the values of trainable parameters (not BatchNorm's running statistics), as
/// PyTorch's `sum(p.numel() for p in model.parameters())` does. Parameters not initialised yet
/// are counted from their shapes (a fresh parameter trains), so counting a fresh VGG-16 does not
/// draw its 138M random values.
struct TrainableCount(usize);

impl burn::module::ModuleVisitor for TrainableCount {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if !param.is_initialized() {
            self.0 += param.lazy_shape().num_elements();
        } else if param.val().is_require_grad() {
            self.0 += param.val().shape().num_elements();
        }
    }
}

/// Trainable parameter values of `model` (built on an autodiff device).
pub fn trainable_params(model: &Network) -> usize {
    let mut count = TrainableCount(0);
    model.visit(&mut count);
    count.0
}

/// Parameters and FLOPs of a model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelCost {
    /// Registry name.
    pub name: String,
    /// One line on what it is.
    pub summary: String,
    /// Trainable parameter values.
    pub params: usize,
    /// Forward FLOPs per image.
    pub flops: u64,
}

/// Parameters and FLOPs of `spec` for `num_classes` classes and `[c, h, w]` inputs.
pub fn cost(spec: &ModelSpec, num_classes: usize, input: [usize; 3], device: &Device) -> Result<ModelCost> {
    let config = network_config(spec, num_classes, input)?;
    let entry = entry(&spec.name)?;
    Ok(ModelCost {
        name: entry.name.to_string(),
        summary: entry.summary.to_string(),
        params: trainable_params(&config.init(&device.clone().autodiff())?),
        flops: config.flops(),
    })
}
