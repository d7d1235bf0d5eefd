//! The study's CNN: four conv layers (3x3 conv -> optional attention -> BatchNorm -> ReLU ->
//! optional 2x2 max-pool), then a classifier with three hidden fully-connected layers.
//!
//! Without attention it is the study's plain CNN (`cnn`); with one of the study's attention
//! architectures after every conv layer it is `attn1`, `attn2` or `attn3`.

use burn::prelude::*;

use crate::error::{Error, Result};
use crate::model::blocks::{AttentionConfig, ConvUnit, ConvUnitConfig, MlpHead, MlpHeadConfig, SharedAttention};
use crate::model::tap::{LayerTap, NoTap};

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
    /// Attention after every conv layer, before its BatchNorm; `None` for the plain CNN.
    #[config(default = "None")]
    pub attention: Option<AttentionConfig>,
}

/// The study's CNN, plain or with attention.
///
/// # Shapes
/// - input: `[batch, 3, 32, 32]`
/// - features: `[batch, widths[3], 2, 2]` with the default pooling (`2 * widths[3]` channels
///   with arch-3 attention)
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct Cnn {
    convs: Vec<ConvUnit>,
    /// Attention parameters shared by every conv layer (arch 1's six scalars; arch 2's q/k/v
    /// with `--attn-shared`).
    shared: Option<SharedAttention>,
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
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid("--dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        if let Some(attention) = &self.attention {
            attention.validate(&self.widths)?;
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

    /// The conv layers' configurations, in order.
    pub fn units(&self) -> Vec<ConvUnitConfig> {
        let mut shape = self.input;
        self.widths
            .iter()
            .zip(&self.pool)
            .map(|(&c_out, &pool)| {
                let [c_in, h, w] = shape;
                let attention = self.attention.as_ref().map(|a| a.layer(c_out, [h, w]));
                let unit = ConvUnitConfig::new(c_in, c_out).with_pool(pool).with_attention(attention);
                shape = unit.output_shape(shape);
                unit
            })
            .collect()
    }

    /// `[channels, height, width]` of the backbone's output.
    pub fn feature_shape(&self) -> [usize; 3] {
        self.units().iter().fold(self.input, |shape, u| u.output_shape(shape))
    }

    fn head(&self) -> MlpHeadConfig {
        let d_in = self.feature_shape().iter().product();
        MlpHeadConfig::new(d_in, self.hidden.clone(), self.num_classes).with_dropout(self.dropout)
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Result<Cnn> {
        self.validate()?;
        Ok(Cnn {
            convs: self.units().iter().map(|u| u.init(device)).collect(),
            shared: self.attention.as_ref().and_then(|a| a.shared()).map(|s| s.init(device)),
            head: self.head().init(device),
        })
    }

    /// Forward FLOPs per image.
    pub fn flops(&self) -> u64 {
        let mut shape = self.input;
        let mut total = 0;
        for unit in self.units() {
            total += unit.flops(shape);
            shape = unit.output_shape(shape);
        }
        total + self.head().flops()
    }

    /// Entries of the pixel x pixel attention matrices naive attention materialises for a batch
    /// (0 for the plain CNN and lean attention).
    pub fn naive_attention_elements(&self, batch: usize) -> u64 {
        let mut shape = self.input;
        let mut total = 0;
        for unit in self.units() {
            total += unit.naive_attention_elements(shape, batch);
            shape = unit.output_shape(shape);
        }
        total
    }

    /// Names of the conv layers, in order (`conv1` .. `convN`). Layer `convI` is the I-th conv
    /// unit's activation after BatchNorm and ReLU, before its max-pool: the map Grad-CAM
    /// explains (4x4 for `conv4` of the default network on 32x32 images).
    pub fn layer_names(&self) -> Vec<String> {
        (1..=self.widths.len()).map(layer_name).collect()
    }

    /// The layer Grad-CAM explains unless told otherwise: the study's 4th conv layer (the last
    /// one if there are fewer).
    pub fn cam_layer(&self) -> String {
        layer_name(self.widths.len().min(4))
    }
}

/// The name of the `index`-th conv layer (from 1).
fn layer_name(index: usize) -> String {
    format!("conv{index}")
}

impl Cnn {
    /// The backbone: every conv layer.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        self.forward_features_tapped(images, &mut NoTap)
    }

    /// The backbone, showing each conv layer's activation (before its pool) to `tap`.
    pub fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4> {
        // [batch, 3, 32, 32] -> [batch, 32, 16, 16] -> ... -> [batch, 256, 2, 2] (defaults)
        let shared = self.shared.as_ref();
        let mut x = images;
        for (i, unit) in self.convs.iter().enumerate() {
            let attended = unit.attend(unit.extract(x), shared); // [batch, c, h, w]; c = 2 c_out after arch 3
            let activation = tap.layer(&layer_name(i + 1), unit.activate(attended)); // [batch, c, h, w]
            x = unit.downsample(activation); // [batch, c, h/2, w/2] with pooling
        }
        x
    }

    /// The conv layers, in order.
    pub fn units(&self) -> &[ConvUnit] {
        &self.convs
    }

    /// The attention parameters shared across layers, if any.
    pub fn shared_attention(&self) -> Option<&SharedAttention> {
        self.shared.as_ref()
    }

    /// The classifier on backbone features.
    pub fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.head.forward(features) // [batch, num_classes]
    }

    /// Logits for a batch of images.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_tapped(images, &mut NoTap)
    }

    /// Logits for a batch of images, showing each conv layer's activation to `tap`.
    pub fn forward_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<2> {
        self.forward_head(self.forward_features_tapped(images, tap))
    }
}
