//! The study's plain CNN: four conv layers (3x3 conv -> BatchNorm -> ReLU -> optional 2x2
//! max-pool), then a classifier with three hidden fully-connected layers.
//!
//! Each conv layer is a stage of `stage_depth` conv units (one in the study) followed by the
//! layer's max-pool. Two brain-inspired features change the stages:
//! - multi-feature extraction (`--conv inception|separable`): each unit's conv is an
//!   Inception-style block or a depthwise-separable conv instead of a plain 3x3 conv;
//! - lateral connections (`--lateral residual|dense`): the units of a stage are connected by
//!   shortcuts (ResNet style) or dense concatenation (DenseNet style), see [`Lateral`].

use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::model::blocks::{
    ConvKind, ConvUnit, ConvUnitConfig, Lateral, LateralConfig, LateralKind, MlpHead, MlpHeadConfig,
};
use crate::model::cost;

/// Configuration of the study's plain CNN.
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
}

/// The study's CNN, plain or with lateral connections and multi-feature convs.
///
/// # Shapes
/// - input: `[batch, 3, 32, 32]`
/// - features: `[batch, widths[3], 2, 2]` with the default pooling
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct Cnn {
    /// Every conv unit, stage by stage (`stage_depth` per stage).
    convs: Vec<ConvUnit>,
    /// The connections of each stage.
    laterals: Vec<Lateral>,
    pool: MaxPool2d,
    #[module(skip)]
    pool_after: Vec<bool>,
    stage_depth: usize,
    head: MlpHead,
}

impl CnnConfig {
    /// Checks that the layer lists agree and every feature map keeps at least one pixel.
    pub fn validate(&self) -> Result<()> {
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(Error::invalid("--widths", "needs at least one conv layer, each of width > 0"));
        }
        if self.pool.len() != self.widths.len() {
            return Err(Error::invalid(
                "--pool",
                format!("{} entries for {} conv layers", self.pool.len(), self.widths.len()),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(Error::invalid("--hidden", "hidden layers need a width > 0"));
        }
        if self.stage_depth == 0 {
            return Err(Error::invalid("--stage-depth", "a stage needs at least one conv unit"));
        }
        if let Some(w) = self.widths.iter().find(|&&w| w < self.conv.min_width()) {
            return Err(Error::invalid(
                "--widths",
                format!("{w} channels cannot be split over the {:?} conv's branches (at least {})", self.conv, self.conv.min_width()),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid("--dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        let [_, h, w] = self.feature_shape();
        if h == 0 || w == 0 {
            return Err(Error::invalid(
                "--pool",
                format!("{} poolings shrink a {}x{} input to nothing", self.pool.iter().filter(|p| **p).count(), self.input[2], self.input[1]),
            ));
        }
        Ok(())
    }

    /// Each stage's connections and the configurations of its units (none pools: the stage
    /// pools after its connections).
    fn stages(&self) -> Vec<(LateralConfig, Vec<ConvUnitConfig>)> {
        let mut c_in = self.input[0];
        self.widths
            .iter()
            .map(|&width| {
                let lateral = LateralConfig::new(self.lateral, c_in, width, self.stage_depth);
                let units = lateral
                    .unit_inputs()
                    .into_iter()
                    .map(|c| ConvUnitConfig::new(c, width).with_pool(false).with_conv(self.conv))
                    .collect();
                c_in = width;
                (lateral, units)
            })
            .collect()
    }

    /// `[channels, height, width]` of the backbone's output.
    pub fn feature_shape(&self) -> [usize; 3] {
        let [_, mut h, mut w] = self.input;
        for &pool in &self.pool {
            if pool {
                h = cost::pooled(h);
                w = cost::pooled(w);
            }
        }
        [self.widths.last().copied().unwrap_or(0), h, w]
    }

    fn head(&self) -> MlpHeadConfig {
        let d_in = self.feature_shape().iter().product();
        MlpHeadConfig::new(d_in, self.hidden.clone(), self.num_classes).with_dropout(self.dropout)
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Result<Cnn> {
        self.validate()?;
        let stages = self.stages();
        Ok(Cnn {
            convs: stages.iter().flat_map(|(_, units)| units.iter().map(|u| u.init(device))).collect(),
            laterals: stages.iter().map(|(l, _)| l.init(device)).collect(),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            pool_after: self.pool.clone(),
            stage_depth: self.stage_depth,
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image.
    pub fn flops(&self) -> u64 {
        let [_, mut h, mut w] = self.input;
        let mut total = 0;
        for ((lateral, units), &pool) in self.stages().iter().zip(&self.pool) {
            total += units.iter().map(|u| u.flops([u.c_in, h, w])).sum::<u64>() + lateral.flops([h, w]);
            if pool {
                h = cost::pooled(h);
                w = cost::pooled(w);
            }
        }
        total + self.head().flops()
    }

    /// Names of the conv layers (stages), in order (`conv1` .. `convN`).
    pub fn layer_names(&self) -> Vec<String> {
        (1..=self.widths.len()).map(|i| format!("conv{i}")).collect()
    }
}

impl Cnn {
    /// The backbone: every conv layer.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        // [batch, 3, 32, 32] -> [batch, 32, 16, 16] -> ... -> [batch, 256, 2, 2] (defaults)
        let mut x = images;
        for (s, (lateral, units)) in self.laterals.iter().zip(self.convs.chunks(self.stage_depth)).enumerate() {
            x = lateral.forward(x, self.stage_depth, |j, x| units[j].forward(x)); // [batch, width, h, w]
            if self.pool_after[s] {
                x = self.pool.forward(x); // [batch, width, h/2, w/2]
            }
        }
        x
    }

    /// The classifier on backbone features.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.head.forward(features) // [batch, num_classes]
    }

    /// The head's parameter-free part: flatten.
    pub fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        features.flatten(1, 3) // [batch, c * h * w]
    }

    /// The classifier on flattened features.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.head.forward(pooled) // [batch, num_classes]
    }

    /// Freezes every conv layer (weights and BatchNorm statistics); the head stays trainable.
    pub fn freeze_backbone(self) -> Self {
        Self {
            convs: self.convs.freeze(),
            laterals: self.laterals.freeze(),
            head: self.head,
            ..self
        }
    }

    /// Logits for a batch of images.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(images))
    }
}
