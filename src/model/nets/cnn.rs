//! The study's CNN: four conv layers (3x3 conv -> optional attention -> BatchNorm -> ReLU ->
//! optional 2x2 max-pool), then a classifier with three hidden fully-connected layers.
//!
//! Without attention it is the study's plain CNN (`cnn`); with one of the study's attention
//! architectures after every conv it is `attn1`, `attn2` or `attn3`.
//!
//! Each conv layer is a stage of `stage_depth` conv units (one in the study) followed by the
//! layer's max-pool. The other two brain-inspired features change the stages, with or without
//! attention:
//! - multi-feature extraction (`--conv inception|separable`): each unit's conv is an
//!   Inception-style block or a depthwise-separable conv instead of a plain 3x3 conv;
//! - lateral connections (`--lateral residual|dense`): the units of a stage are connected by
//!   shortcuts (ResNet style) or dense concatenation (DenseNet style), see [`Lateral`].

use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::model::blocks::{
    AttentionConfig, ChannelAttnKind, ConvKind, ConvUnit, ConvUnitConfig, Lateral, LateralConfig,
    LateralKind, MlpHead, MlpHeadConfig, SharedAttention,
};
use crate::model::family::{ImageClassifier, ImageClassifierConfig};
use crate::model::tap::LayerTap;
use crate::model::{cost, ops};

/// Configuration of the study's CNN.
#[derive(Config, Debug)]
pub struct CnnConfig {
    /// Classes to predict.
    pub num_classes: usize,
    /// Input `[channels, height, width]`.
    #[config(default = "[3, 32, 32]")]
    pub input: [usize; 3],
    /// Output channels of each conv layer (the study has four).
    #[config(default = "vec![32, 64, 128, 256]")]
    pub widths: Vec<usize>,
    /// Whether a 2x2 max-pool follows each conv layer (one entry per conv layer).
    #[config(default = "vec![true, true, true, true]")]
    pub pool: Vec<bool>,
    /// Widths of the classifier's hidden layers (the study has three).
    #[config(default = "vec![512, 256, 128]")]
    pub hidden: Vec<usize>,
    /// Dropout probability in the classifier; 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Conv units per stage (per `widths` entry); the study has one.
    #[config(default = 1)]
    pub stage_depth: usize,
    /// Lateral connections between the units of a stage.
    #[config(default = "LateralKind::None")]
    pub lateral: LateralKind,
    /// The conv of every unit: plain 3x3, Inception-style, depthwise-separable.
    #[config(default = "ConvKind::Plain")]
    pub conv: ConvKind,
    /// Attention after every conv, before its BatchNorm; `None` for the plain CNN.
    #[config(default = "None")]
    pub attention: Option<AttentionConfig>,
    /// A standard attention module after every conv (and after the study's attention).
    #[config(default = "None")]
    pub channel_attn: Option<ChannelAttnKind>,
}

/// The study's CNN, plain or with attention, lateral connections and multi-feature convs.
///
/// # Shapes
/// - input: `[batch, 3, 32, 32]`
/// - features: `[batch, widths[3], 2, 2]` with the default pooling (`2 * widths[3]` channels
///   with arch-3 attention)
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct Cnn {
    /// Every conv unit, stage by stage (`stage_depth` per stage).
    convs: Vec<ConvUnit>,
    /// The connections of each stage.
    laterals: Vec<Lateral>,
    /// Attention parameters shared by every conv layer (arch 1's six scalars; arch 2's q/k/v
    /// with `--attn-shared`).
    shared: Option<SharedAttention>,
    pool: MaxPool2d,
    #[module(skip)]
    pool_after: Vec<bool>,
    stage_depth: usize,
    head: MlpHead,
}

/// One stage's plan: its connections, its units, and the `[h, w]` they work at.
struct Stage {
    lateral: LateralConfig,
    units: Vec<ConvUnitConfig>,
    hw: [usize; 2],
}

impl CnnConfig {
    /// Each stage's plan. No unit pools: the stage pools after its connections. Every unit of a
    /// stage outputs the same channels (`width`, or `2 width` after arch-3 attention, which
    /// concatenates), and so does the stage.
    fn stages(&self) -> Vec<Stage> {
        let [mut c_in, mut h, mut w] = self.input;
        self.widths
            .iter()
            .zip(&self.pool)
            .map(|(&width, &pool)| {
                let attention = self.attention.as_ref().map(|a| a.layer(width, [h, w]));
                let unit = |c| {
                    ConvUnitConfig::new(c, width)
                        .with_conv(self.conv)
                        .with_attention(attention.clone())
                        .with_channel_attn(self.channel_attn)
                };
                let c_out = unit(c_in).channels();
                let lateral = LateralConfig::new(self.lateral, c_in, c_out, self.stage_depth);
                let units = lateral.unit_inputs().into_iter().map(unit).collect();
                let stage = Stage {
                    lateral,
                    units,
                    hw: [h, w],
                };
                c_in = c_out;
                if pool {
                    h = cost::pooled(h);
                    w = cost::pooled(w);
                }
                stage
            })
            .collect()
    }

    /// Every conv unit's configuration, stage by stage.
    pub fn units(&self) -> Vec<ConvUnitConfig> {
        self.stages().into_iter().flat_map(|s| s.units).collect()
    }

    fn head(&self) -> MlpHeadConfig {
        let d_in = self.feature_shape().iter().product();
        MlpHeadConfig::new(d_in, self.hidden.clone(), self.num_classes).with_dropout(self.dropout)
    }
}

impl ImageClassifierConfig for CnnConfig {
    type Network = Cnn;

    /// Checks that the layer lists agree and every feature map keeps at least one pixel.
    fn validate(&self) -> Result<()> {
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(Error::invalid(
                "--widths",
                "needs at least one conv layer, each of width > 0",
            ));
        }
        if self.pool.len() != self.widths.len() {
            return Err(Error::invalid(
                "--pool",
                format!(
                    "{} entries for {} conv layers",
                    self.pool.len(),
                    self.widths.len()
                ),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(Error::invalid("--hidden", "hidden layers need a width > 0"));
        }
        if self.stage_depth == 0 {
            return Err(Error::invalid(
                "--stage-depth",
                "a stage needs at least one conv unit",
            ));
        }
        if let Some(w) = self.widths.iter().find(|&&w| w < self.conv.min_width()) {
            return Err(Error::invalid(
                "--widths",
                format!(
                    "{w} channels cannot be split over the {:?} conv's branches (at least {})",
                    self.conv,
                    self.conv.min_width()
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(
                "--dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if let Some(attention) = &self.attention {
            attention.validate(&self.widths)?;
        }
        let [_, h, w] = self.feature_shape();
        if h == 0 || w == 0 {
            return Err(Error::invalid(
                "--pool",
                format!(
                    "{} poolings shrink a {}x{} input to nothing",
                    self.pool.iter().filter(|p| **p).count(),
                    self.input[2],
                    self.input[1]
                ),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<Cnn> {
        self.validate()?;
        let stages = self.stages();
        Ok(Cnn {
            convs: stages
                .iter()
                .flat_map(|s| s.units.iter().map(|u| u.init(device)))
                .collect(),
            laterals: stages.iter().map(|s| s.lateral.init(device)).collect(),
            shared: self
                .attention
                .as_ref()
                .and_then(|a| a.shared())
                .map(|s| s.init(device)),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            pool_after: self.pool.clone(),
            stage_depth: self.stage_depth,
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image: every unit (conv and attention), the lateral connections, the head.
    fn flops(&self) -> u64 {
        let mut total = 0;
        for Stage {
            lateral,
            units,
            hw: [h, w],
        } in self.stages()
        {
            total +=
                units.iter().map(|u| u.flops([u.c_in, h, w])).sum::<u64>() + lateral.flops([h, w]);
        }
        total + self.head().flops()
    }

    /// `[channels, height, width]` of the backbone's output.
    fn feature_shape(&self) -> [usize; 3] {
        let [mut c, mut h, mut w] = self.input;
        for (stage, &pool) in self.stages().iter().zip(&self.pool) {
            c = stage.lateral.width;
            if pool {
                h = cost::pooled(h);
                w = cost::pooled(w);
            }
        }
        [c, h, w]
    }

    /// Names of the conv layers (stages), in order (`conv1` .. `convN`). Layer `convI` is the
    /// I-th stage's output before its max-pool (with one unit and no lateral connections: the
    /// conv unit's activation after attention, BatchNorm and ReLU): the map Grad-CAM explains
    /// (4x4 for `conv4` of the default network on 32x32 images).
    fn layer_names(&self) -> Vec<String> {
        (1..=self.widths.len()).map(layer_name).collect()
    }

    /// The layer Grad-CAM explains unless told otherwise: the study's 4th conv layer (the last
    /// one if there are fewer).
    fn cam_layer(&self) -> String {
        layer_name(self.widths.len().min(4))
    }

    /// Entries of the pixel x pixel attention matrices naive attention materialises for a batch
    /// (0 for the plain CNN and lean attention).
    fn naive_attention_elements(&self, batch: usize) -> u64 {
        let mut total = 0;
        for Stage {
            units, hw: [h, w], ..
        } in self.stages()
        {
            total += units
                .iter()
                .map(|u| u.naive_attention_elements([u.c_in, h, w], batch))
                .sum::<u64>();
        }
        total
    }
}

fn layer_name(index: usize) -> String {
    format!("conv{index}")
}

impl Cnn {
    /// The conv units, stage by stage.
    pub fn units(&self) -> &[ConvUnit] {
        &self.convs
    }

    /// The attention parameters shared across layers, if any.
    pub fn shared_attention(&self) -> Option<&SharedAttention> {
        self.shared.as_ref()
    }
}

impl ImageClassifier for Cnn {
    type Head = MlpHead;

    /// The backbone, showing each conv layer's output (before its pool) to `tap`.
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        // [batch, 3, 32, 32] -> [batch, 32, 16, 16] -> ... -> [batch, 256, 2, 2] (defaults)
        let shared = self.shared.as_ref();
        let mut x = images;
        for (s, (lateral, units)) in self
            .laterals
            .iter()
            .zip(self.convs.chunks(self.stage_depth))
            .enumerate()
        {
            let name = layer_name(s + 1);
            let depth = self.stage_depth;
            if self.pool_after[s] && !tap.sees(&name) {
                // Nobody looks at the activation before the pool: a plain chain runs its last
                // unit's BatchNorm -> ReLU and the pool as one op (in inference one pass that
                // never writes the full-size activation; in training one that keeps none for
                // the backward)
                x = lateral.forward_pooled(
                    x,
                    depth,
                    |j, x| units[j].forward(x, shared),
                    |j, x| units[j].forward_pooled(x, shared, &self.pool),
                    |x| ops::max_pool::forward(&self.pool, x),
                ); // [batch, c, h/2, w/2]
                continue;
            }
            let stage = lateral.forward(x, depth, |j, x| units[j].forward(x, shared)); // [batch, c, h, w]
            let stage = tap.layer(&name, stage);
            x = if self.pool_after[s] {
                ops::max_pool::forward(&self.pool, stage) // [batch, c, h/2, w/2]
            } else {
                stage
            };
        }
        x
    }

    fn head(&self) -> &Self::Head {
        &self.head
    }

    /// Freezes every conv layer (weights and BatchNorm statistics, attention included); the
    /// head stays trainable.
    fn freeze_backbone(self) -> Self {
        Self {
            convs: self.convs.freeze(),
            laterals: self.laterals.freeze(),
            shared: self.shared.map(|s| s.freeze()),
            head: self.head,
            ..self
        }
    }
}
