//! The model registry: every model the CLI can train, by name.
//!
//! A model is a name plus [`ModelOptions`]; [`network_config`] turns both into a
//! [`NetworkConfig`] that builds the network and counts its cost.

use burn::prelude::*;

use super::blocks::{
    AttentionArch, AttentionConfig, AttentionImpl, ChannelAttnKind, ConvKind, LateralKind,
};
use super::nets::{
    Cnn, CnnConfig, EfficientNetLite, EfficientNetLiteConfig, Form, ResNet, ResNetConfig, Vgg,
    VggConfig, Xception, XceptionConfig,
};
use super::tap::{LayerTap, NoTap, Recorder};
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
    /// attn1, attn2: how pixel attention is computed: lean (memory linear in the pixels; CPU
    /// kernels on flex), tiled (lean, from the backend's tensor operations), naive (keeps the
    /// pixel x pixel attention matrices; the reference).
    #[arg(long, value_enum, default_value_t = ModelOptions::default().attn_impl)]
    pub attn_impl: AttentionImpl,
    /// attn2, attn3: attention heads (the study's future work).
    #[arg(long, default_value_t = ModelOptions::default().heads)]
    pub heads: usize,
    /// attn2: queries and keys have C / r channels.
    #[arg(long, value_name = "R", default_value_t = ModelOptions::default().attn_reduction)]
    pub attn_reduction: usize,
    /// attn2: initial value of the learnable residual weight gamma (1: the study's x + y; 0: SAGAN).
    #[arg(long, default_value_t = ModelOptions::default().attn_gamma, allow_negative_numbers = true)]
    pub attn_gamma: f64,
    /// attn2: one set of q/k/v 1x1 convs shared by every layer, each layer projecting to and from
    /// a common width (the study's future work).
    #[arg(long, value_name = "BOOL", default_value_t = ModelOptions::default().attn_shared, action = clap::ArgAction::Set)]
    pub attn_shared: bool,
    /// attn2 with --attn-shared true: the common width.
    #[arg(long, value_name = "CHANNELS", default_value_t = ModelOptions::default().attn_shared_width)]
    pub attn_shared_width: usize,
    /// attn3: width D of the queries and keys.
    #[arg(long, value_name = "D", default_value_t = ModelOptions::default().attn_dim)]
    pub attn_dim: usize,
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
    /// cnn, attn1-3: a standard attention module after every conv (after the study's
    /// attention): se (squeeze-excite), eca, cbam, gc (global context), as timm defines them.
    #[arg(long, value_enum)]
    pub channel_attn: Option<ChannelAttnKind>,
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
            attn_impl: AttentionImpl::Lean,
            heads: 1,
            attn_reduction: 8,
            attn_gamma: 1.0,
            attn_shared: false,
            attn_shared_width: 64,
            attn_dim: 64,
            stage_depth: 1,
            lateral: LateralKind::None,
            conv: ConvKind::Plain,
            channel_attn: None,
            form: Form::Imagenet,
            resize: None,
        }
    }
}

impl ModelOptions {
    /// The attention options as the network-wide configuration of `arch`.
    fn attention(&self, arch: AttentionArch) -> AttentionConfig {
        AttentionConfig::new(arch)
            .with_implementation(self.attn_impl)
            .with_heads(self.heads)
            .with_reduction(self.attn_reduction)
            .with_gamma(self.attn_gamma)
            .with_shared_width(self.attn_shared.then_some(self.attn_shared_width))
            .with_dim(self.attn_dim)
    }

    /// Refuses options that `model` does not use but that were changed from their defaults, so
    /// that `--heads 4` on a model without heads is not silently ignored.
    pub fn check_used(&self, model: &str) -> Result<()> {
        let default = ModelOptions::default();
        let options: [(&str, bool, &[&str]); 7] = [
            (
                "--attn-impl",
                self.attn_impl != default.attn_impl,
                &["attn1", "attn2"],
            ),
            ("--heads", self.heads != default.heads, &["attn2", "attn3"]),
            (
                "--attn-reduction",
                self.attn_reduction != default.attn_reduction,
                &["attn2"],
            ),
            (
                "--attn-gamma",
                self.attn_gamma != default.attn_gamma,
                &["attn2"],
            ),
            (
                "--attn-shared",
                self.attn_shared != default.attn_shared,
                &["attn2"],
            ),
            (
                "--attn-shared-width",
                self.attn_shared_width != default.attn_shared_width,
                &["attn2"],
            ),
            ("--attn-dim", self.attn_dim != default.attn_dim, &["attn3"]),
        ];
        for (flag, changed, models) in options {
            if changed && !models.contains(&model) {
                return Err(Error::invalid(
                    flag,
                    format!("applies to {}, not to {model}", models.join(" and ")),
                ));
            }
        }
        if self.attn_shared_width != default.attn_shared_width && !self.attn_shared {
            return Err(Error::invalid(
                "--attn-shared-width",
                "needs --attn-shared true",
            ));
        }
        Ok(())
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

/// The study's CNN with the options of `o` (widths, pooling, head, and the lateral and
/// multi-feature blocks; attention is added by the `attn*` entries).
fn study_cnn(o: &ModelOptions, num_classes: usize, input: [usize; 3]) -> CnnConfig {
    CnnConfig::new(num_classes)
        .with_input(input)
        .with_widths(o.widths.clone())
        .with_pool(o.pool.clone())
        .with_hidden(o.hidden.clone())
        .with_dropout(o.dropout)
        .with_stage_depth(o.stage_depth as usize)
        .with_lateral(o.lateral)
        .with_conv(o.conv)
        .with_channel_attn(o.channel_attn)
}

/// Every registered model.
pub const MODELS: &[Entry] = &[
    Entry {
        name: "cnn",
        summary: "the study's plain CNN: 4 x (3x3 conv, BatchNorm, ReLU, max-pool), 3 hidden FC layers",
        config: |o, num_classes, input| NetworkConfig::Cnn(study_cnn(o, num_classes, input)),
    },
    Entry {
        name: "attn1",
        summary: "cnn + attention arch 1 after every conv: per-channel pixel attention, scalar q/k/v shared by all layers",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(
                study_cnn(o, num_classes, input)
                    .with_attention(Some(o.attention(AttentionArch::Arch1))),
            )
        },
    },
    Entry {
        name: "attn2",
        summary: "cnn + attention arch 2 after every conv: pixel attention shared by all channels (SAGAN)",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(
                study_cnn(o, num_classes, input)
                    .with_attention(Some(o.attention(AttentionArch::Arch2))),
            )
        },
    },
    Entry {
        name: "attn3",
        summary: "cnn + attention arch 3 after every conv: attention between feature maps, concatenated (2x channels)",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(
                study_cnn(o, num_classes, input)
                    .with_attention(Some(o.attention(AttentionArch::Arch3))),
            )
        },
    },
    Entry {
        name: "vgg16",
        summary: "VGG-16 (torchvision vgg16): 13 3x3 convs in 5 stages, 2 hidden FC layers",
        config: |o, num_classes, input| {
            NetworkConfig::Vgg(
                VggConfig::new(num_classes)
                    .with_input(input)
                    .with_form(o.form)
                    .with_resize(resize(o)),
            )
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
            NetworkConfig::ResNet(
                ResNetConfig::new(num_classes)
                    .with_input(input)
                    .with_form(o.form)
                    .with_resize(resize(o)),
            )
        },
    },
    Entry {
        name: "xception",
        summary: "Xception (timm legacy_xception): 12 blocks of depthwise-separable convs",
        config: |o, num_classes, input| {
            NetworkConfig::Xception(
                XceptionConfig::new(num_classes)
                    .with_input(input)
                    .with_form(o.form)
                    .with_resize(resize(o)),
            )
        },
    },
    Entry {
        name: "efficientnet_lite0",
        summary: "EfficientNet-Lite0: 16 MBConv blocks, ReLU6, no squeeze-excite (ImageNet weights in shared/)",
        config: |o, num_classes, input| {
            NetworkConfig::EfficientNetLite(
                EfficientNetLiteConfig::new(num_classes)
                    .with_input(input)
                    .with_form(o.form)
                    .with_resize(resize(o)),
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
        Error::invalid(
            "--model",
            format!("unknown model '{name}'; models: {}", names().join(", ")),
        )
    })
}

/// The configuration of `spec` for `num_classes` classes and `[c, h, w]` inputs, validated.
pub fn network_config(
    spec: &ModelSpec,
    num_classes: usize,
    input: [usize; 3],
) -> Result<NetworkConfig> {
    let entry = entry(&spec.name)?;
    spec.options.check_used(entry.name)?;
    let config = (entry.config)(&spec.options, num_classes, input);
    let o = &spec.options;
    if matches!(config, NetworkConfig::Cnn(_)) {
        if o.resize.is_some() {
            return Err(Error::invalid(
                "--resize",
                format!("applies to the baselines, not to '{}'", spec.name),
            ));
        }
    } else {
        let defaults = ModelOptions::default();
        for (flag, set) in [
            ("--lateral", o.lateral != defaults.lateral),
            ("--conv", o.conv != defaults.conv),
            ("--stage-depth", o.stage_depth != defaults.stage_depth),
            ("--channel-attn", o.channel_attn.is_some()),
        ] {
            if set {
                return Err(Error::invalid(
                    flag,
                    format!(
                        "applies to the study's CNNs, not to the baseline '{}'",
                        spec.name
                    ),
                ));
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

    /// Entries of the pixel x pixel attention matrices naive attention materialises for a batch
    /// of `batch` images (0 without attention or with the lean implementations).
    pub fn naive_attention_elements(&self, batch: usize) -> u64 {
        match self {
            NetworkConfig::Cnn(c) => c.naive_attention_elements(batch),
            _ => 0,
        }
    }

    /// Refuses naive attention (`--attn-impl naive`) whose pixel x pixel matrices alone could
    /// take more than half the memory the system has available, counting `copies` `f32` copies
    /// of each (about 4 are alive around the softmax in a training step, 2 in inference), so
    /// that `model` at `batch` images per step (set by `flag`) ends with a message instead of
    /// the out-of-memory killer. Passes when the available memory is unknown.
    pub fn check_naive_attention_memory(
        &self,
        model: &str,
        batch: usize,
        copies: u64,
        flag: &str,
    ) -> Result<()> {
        let bytes = copies * 4 * self.naive_attention_elements(batch);
        match crate::device::available_memory() {
            Some(available) if bytes > available / 2 => Err(Error::invalid(
                flag,
                format!(
                    "naive {model} at {batch} images per step may hold {:.1} GiB of attention matrices, more than \
                     half the {:.1} GiB available: use a smaller batch or --attn-impl lean",
                    bytes as f64 / GIB,
                    available as f64 / GIB
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Names of the layers Grad-CAM and probes can tap, in forward order: the names the
    /// network passes to a [`LayerTap`].
    pub fn layer_names(&self) -> Vec<String> {
        each!(NetworkConfig, self, c => c.layer_names())
    }

    /// `[channels, height, width]` of the backbone's output.
    pub fn feature_shape(&self) -> [usize; 3] {
        each!(NetworkConfig, self, c => c.feature_shape())
    }

    /// The layer Grad-CAM explains unless told otherwise (the study's 4th conv layer for its
    /// CNNs).
    pub fn cam_layer(&self) -> String {
        match self {
            NetworkConfig::Cnn(c) => c.cam_layer(),
            // The last named layer: the backbone's final feature map, as Grad-CAM's authors use.
            other => other.layer_names().pop().unwrap_or_default(),
        }
    }

    /// Checks that `name` is one of [`layer_names`](Self::layer_names); the error lists them.
    pub fn check_layer(&self, model: &str, name: &str) -> Result<()> {
        let names = self.layer_names();
        if names.iter().any(|n| n == name) {
            return Ok(());
        }
        Err(Error::invalid(
            "--layer",
            format!(
                "model '{model}' has no layer '{name}'; its layers: {}",
                names.join(", ")
            ),
        ))
    }

    /// Each tappable layer with the `[channels, height, width]` of its activation for one
    /// input image, in forward order (a forward pass of a zero image on `device`).
    pub fn layer_shapes(
        &self,
        input: [usize; 3],
        device: &Device,
    ) -> Result<Vec<(String, [usize; 3])>> {
        let model = self.init(device)?.valid();
        let [c, h, w] = input;
        let mut recorder = Recorder::default();
        model.forward_tapped(Tensor::zeros([1, c, h, w], device), &mut recorder);
        Ok(recorder.layers)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Any registered network. Every network splits into a backbone (`forward_features`) and a
/// classifier head (`forward_head`); the head splits again into a parameter-free pooling
/// (`pool_features`) and the trainable classifier (`classify`), so pooled features can be
/// computed once and cached for a linear probe.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a layer choice, built once per network: boxing saves nothing that matters
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
        self.forward_features_tapped(images, &mut NoTap)
    }

    /// Backbone features, showing the activation of each named layer to `tap` (see
    /// [`crate::model::tap`]).
    pub fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        each!(Network, self, m => m.forward_features_tapped(images, tap))
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
        self.forward_tapped(images, &mut NoTap)
    }

    /// Logits, showing the activation of each named layer to `tap` on the way.
    pub fn forward_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<2> {
        self.forward_head(self.forward_features_tapped(images, tap))
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
pub fn cost(
    spec: &ModelSpec,
    num_classes: usize,
    input: [usize; 3],
    device: &Device,
) -> Result<ModelCost> {
    let config = network_config(spec, num_classes, input)?;
    let entry = entry(&spec.name)?;
    Ok(ModelCost {
        name: entry.name.to_string(),
        summary: entry.summary.to_string(),
        params: trainable_params(&config.init(&device.clone().autodiff())?),
        flops: config.flops(),
    })
}
