//! The model registry: every model the CLI can train, by name.
//!
//! A model is a name plus [`ModelOptions`]; [`network_config`] turns both into a
//! [`NetworkConfig`] that builds the network and counts its cost.

use burn::prelude::*;

use super::blocks::{AttentionArch, AttentionConfig, AttentionImpl};
use super::nets::{Cnn, CnnConfig};
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
    /// Dropout probability in the classifier (0 disables it).
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
            ("--attn-impl", self.attn_impl != default.attn_impl, &["attn1", "attn2"]),
            ("--heads", self.heads != default.heads, &["attn2", "attn3"]),
            ("--attn-reduction", self.attn_reduction != default.attn_reduction, &["attn2"]),
            ("--attn-gamma", self.attn_gamma != default.attn_gamma, &["attn2"]),
            ("--attn-shared", self.attn_shared != default.attn_shared, &["attn2"]),
            ("--attn-shared-width", self.attn_shared_width != default.attn_shared_width, &["attn2"]),
            ("--attn-dim", self.attn_dim != default.attn_dim, &["attn3"]),
        ];
        for (flag, changed, models) in options {
            if changed && !models.contains(&model) {
                return Err(Error::invalid(flag, format!("applies to {}, not to {model}", models.join(" and "))));
            }
        }
        if self.attn_shared_width != default.attn_shared_width && !self.attn_shared {
            return Err(Error::invalid("--attn-shared-width", "needs --attn-shared true"));
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

/// The study's CNN with the plain-CNN options of `o`.
fn study_cnn(o: &ModelOptions, num_classes: usize, input: [usize; 3]) -> CnnConfig {
    CnnConfig::new(num_classes)
        .with_input(input)
        .with_widths(o.widths.clone())
        .with_pool(o.pool.clone())
        .with_hidden(o.hidden.clone())
        .with_dropout(o.dropout)
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
            NetworkConfig::Cnn(study_cnn(o, num_classes, input).with_attention(Some(o.attention(AttentionArch::Arch1))))
        },
    },
    Entry {
        name: "attn2",
        summary: "cnn + attention arch 2 after every conv: pixel attention shared by all channels (SAGAN)",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(study_cnn(o, num_classes, input).with_attention(Some(o.attention(AttentionArch::Arch2))))
        },
    },
    Entry {
        name: "attn3",
        summary: "cnn + attention arch 3 after every conv: attention between feature maps, concatenated (2x channels)",
        config: |o, num_classes, input| {
            NetworkConfig::Cnn(study_cnn(o, num_classes, input).with_attention(Some(o.attention(AttentionArch::Arch3))))
        },
    },
];

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
    let entry = entry(&spec.name)?;
    spec.options.check_used(entry.name)?;
    let config = (entry.config)(&spec.options, num_classes, input);
    config.validate()?;
    Ok(config)
}

/// The configuration of any registered network.
#[derive(Clone, Debug)]
pub enum NetworkConfig {
    /// The study's CNN.
    Cnn(CnnConfig),
}

impl NetworkConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        match self {
            NetworkConfig::Cnn(c) => c.validate(),
        }
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Result<Network> {
        Ok(match self {
            NetworkConfig::Cnn(c) => Network::Cnn(c.init(device)?),
        })
    }

    /// Forward FLOPs per image.
    pub fn flops(&self) -> u64 {
        match self {
            NetworkConfig::Cnn(c) => c.flops(),
        }
    }

    /// Entries of the pixel x pixel attention matrices naive attention materialises for a batch
    /// of `batch` images (0 without attention or with the lean implementations).
    pub fn naive_attention_elements(&self, batch: usize) -> u64 {
        match self {
            NetworkConfig::Cnn(c) => c.naive_attention_elements(batch),
        }
    }

    /// Refuses naive attention (`--attn-impl naive`) whose pixel x pixel matrices alone could
    /// take more than half the memory the system has available, counting `copies` `f32` copies
    /// of each (about 4 are alive around the softmax in a training step, 2 in inference), so
    /// that `model` at `batch` images per step (set by `flag`) ends with a message instead of
    /// the out-of-memory killer. Passes when the available memory is unknown.
    pub fn check_naive_attention_memory(&self, model: &str, batch: usize, copies: u64, flag: &str) -> Result<()> {
        let bytes = copies * 4 * self.naive_attention_elements(batch);
        match super::cost::available_memory() {
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
        match self {
            NetworkConfig::Cnn(c) => c.layer_names(),
        }
    }

    /// The layer Grad-CAM explains unless told otherwise (the study's 4th conv layer for its
    /// CNNs).
    pub fn cam_layer(&self) -> String {
        match self {
            NetworkConfig::Cnn(c) => c.cam_layer(),
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
            format!("model '{model}' has no layer '{name}'; its layers: {}", names.join(", ")),
        ))
    }

    /// Each tappable layer with the `[channels, height, width]` of its activation for one
    /// input image, in forward order (a forward pass of a zero image on `device`).
    pub fn layer_shapes(&self, input: [usize; 3], device: &Device) -> Result<Vec<(String, [usize; 3])>> {
        let model = self.init(device)?.valid();
        let [c, h, w] = input;
        let mut recorder = Recorder::default();
        model.forward_tapped(Tensor::zeros([1, c, h, w], device), &mut recorder);
        Ok(recorder.layers)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Any registered network. Every network splits into a backbone (`forward_features`) and a
/// classifier head (`forward_head`).
#[derive(Module, Debug)]
pub enum Network {
    /// The study's CNN.
    Cnn(Cnn),
}

impl Network {
    /// Backbone features of a batch of images.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        self.forward_features_tapped(images, &mut NoTap)
    }

    /// Backbone features, showing the activation of each named layer to `tap` (see
    /// [`crate::model::tap`]).
    pub fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        match self {
            Network::Cnn(m) => m.forward_features_tapped(images, tap),
        }
    }

    /// Logits from backbone features.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Cnn(m) => m.forward_head(features),
        }
    }

    /// Logits for a batch of images: `[batch, c, h, w] -> [batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_tapped(images, &mut NoTap)
    }

    /// Logits, showing the activation of each named layer to `tap` on the way.
    pub fn forward_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<2> {
        self.forward_head(self.forward_features_tapped(images, tap))
    }
}

/// Counts the values of trainable parameters (not BatchNorm's running statistics), as
/// PyTorch's `sum(p.numel() for p in model.parameters())` does.
struct TrainableCount(usize);

impl burn::module::ModuleVisitor for TrainableCount {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            self.0 += value.shape().num_elements();
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
