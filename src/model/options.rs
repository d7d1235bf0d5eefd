//! The model options: the architecture flags of `train` (and keys of its config file), and
//! which of them each model uses.

use super::blocks::{
    AttentionArch, AttentionConfig, AttentionImpl, ChannelAttnKind, ConvKind, LateralKind,
};
use super::nets::Form;
use super::network::NetworkConfig;
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
    /// attn1, attn2, attn3: how attention is computed: lean (arch 1, 2: memory linear in the
    /// pixels; arch 3: one operation; CPU kernels on flex), tiled (the same, from the backend's
    /// tensor operations), naive (tensor operations autodiff'd by burn; the reference).
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
    pub(crate) fn attention(&self, arch: AttentionArch) -> AttentionConfig {
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
                &["attn1", "attn2", "attn3"],
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

    /// Refuses the options of the other kind of model: the study CNN's (`--lateral`, `--conv`,
    /// `--stage-depth`, `--channel-attn`) on a baseline, `--resize` on a study CNN.
    pub fn check_family(&self, model: &str, config: &NetworkConfig) -> Result<()> {
        if matches!(config, NetworkConfig::Cnn(_)) {
            if self.resize.is_some() {
                return Err(Error::invalid(
                    "--resize",
                    format!("applies to the baselines, not to '{model}'"),
                ));
            }
            return Ok(());
        }
        let defaults = ModelOptions::default();
        for (flag, set) in [
            ("--lateral", self.lateral != defaults.lateral),
            ("--conv", self.conv != defaults.conv),
            ("--stage-depth", self.stage_depth != defaults.stage_depth),
            ("--channel-attn", self.channel_attn.is_some()),
        ] {
            if set {
                return Err(Error::invalid(
                    flag,
                    format!("applies to the study's CNNs, not to the baseline '{model}'"),
                ));
            }
        }
        Ok(())
    }
}

/// A model to build: its name in the model table and its options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Name in the model table ([`super::table::MODELS`]), e.g. `cnn`.
    pub name: String,
    /// Architecture options.
    pub options: ModelOptions,
}
