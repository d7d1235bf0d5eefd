//! The model table: every model the CLI can train, by name, and the configuration each name
//! and [`ModelOptions`] stand for.
//!
//! A model of an existing family is one [`Entry`] in [`MODELS`]; a new family is a file in
//! [`super::nets`] implementing [`super::family`]'s traits, one line in [`super::network`]'s
//! family list, and its entries here (see `docs/models.md`).

use super::blocks::AttentionArch;
use super::family::ImageClassifierConfig;
use super::nets::{CnnConfig, EfficientNetLiteConfig, ResNetConfig, VggConfig, XceptionConfig};
use super::network::NetworkConfig;
use super::options::{ModelOptions, ModelSpec};
use crate::error::{Error, Result};

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
/// multi-feature blocks) and, for the `attn*` entries, attention `arch` after every conv.
fn study_cnn(
    o: &ModelOptions,
    num_classes: usize,
    input: [usize; 3],
    arch: Option<AttentionArch>,
) -> NetworkConfig {
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
        .with_attention(arch.map(|a| o.attention(a)))
        .into()
}

/// Every registered model.
pub const MODELS: &[Entry] = &[
    Entry {
        name: "cnn",
        summary: "the study's plain CNN: 4 x (3x3 conv, BatchNorm, ReLU, max-pool), 3 hidden FC layers",
        config: |o, classes, input| study_cnn(o, classes, input, None),
    },
    Entry {
        name: "attn1",
        summary: "cnn + attention arch 1 after every conv: per-channel pixel attention, scalar q/k/v shared by all layers",
        config: |o, classes, input| study_cnn(o, classes, input, Some(AttentionArch::Arch1)),
    },
    Entry {
        name: "attn2",
        summary: "cnn + attention arch 2 after every conv: pixel attention shared by all channels (SAGAN)",
        config: |o, classes, input| study_cnn(o, classes, input, Some(AttentionArch::Arch2)),
    },
    Entry {
        name: "attn3",
        summary: "cnn + attention arch 3 after every conv: attention between feature maps, concatenated (2x channels)",
        config: |o, classes, input| study_cnn(o, classes, input, Some(AttentionArch::Arch3)),
    },
    Entry {
        name: "vgg16",
        summary: "VGG-16 (torchvision vgg16): 13 3x3 convs in 5 stages, 2 hidden FC layers",
        config: |o, classes, input| {
            VggConfig::new(classes)
                .with_input(input)
                .with_form(o.form)
                .with_resize(resize(o))
                .into()
        },
    },
    Entry {
        name: "vgg16_bn",
        summary: "VGG-16 with BatchNorm after every conv (torchvision vgg16_bn)",
        config: |o, classes, input| {
            VggConfig::new(classes)
                .with_input(input)
                .with_form(o.form)
                .with_batch_norm(true)
                .with_resize(resize(o))
                .into()
        },
    },
    Entry {
        name: "resnet50",
        summary: "ResNet-50 (torchvision resnet50): 16 bottlenecks in 4 stages",
        config: |o, classes, input| {
            ResNetConfig::new(classes)
                .with_input(input)
                .with_form(o.form)
                .with_resize(resize(o))
                .into()
        },
    },
    Entry {
        name: "xception",
        summary: "Xception (timm legacy_xception): 12 blocks of depthwise-separable convs",
        config: |o, classes, input| {
            XceptionConfig::new(classes)
                .with_input(input)
                .with_form(o.form)
                .with_resize(resize(o))
                .into()
        },
    },
    Entry {
        name: "efficientnet_lite0",
        summary: "EfficientNet-Lite0: 16 MBConv blocks, ReLU6, no squeeze-excite (ImageNet weights in shared/)",
        config: |o, classes, input| {
            EfficientNetLiteConfig::new(classes)
                .with_input(input)
                .with_form(o.form)
                .with_resize(resize(o))
                .into()
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

/// The table's entry called `name`.
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
    spec.options.check_family(&spec.name, &config)?;
    config.validate()?;
    Ok(config)
}
