//! The study's conv layer: feature extractor (3x3 conv, or a multi-feature conv of the same shape:
//! `--conv inception|separable`) -> optional attention (the study's, then `--channel-attn`) ->
//! BatchNorm -> ReLU. The 2x2 max-pool after it is the network stage's (it pools after the
//! stage's lateral connections); [`ConvUnit::forward_pooled`] runs it fused into the unit's
//! BatchNorm -> ReLU where the stage is a plain chain.
//!
//! Each step is its own method ([`ConvUnit::extract`], [`ConvUnit::attend`],
//! [`ConvUnit::activate`]), so a variant of one step (another feature extractor, a lateral input)
//! slots in without touching the others.

use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, BatchNormConfig, Relu};
use burn::prelude::*;

use super::attention::{Attention, AttentionLayerConfig, SharedAttention};
use super::channel_attn::{ChannelAttn, ChannelAttnKind};
use super::multi_feature::{ConvKind, FeatureConv};
use crate::model::ops;

/// Configuration of a [`ConvUnit`].
#[derive(Config, Debug)]
pub struct ConvUnitConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels of the conv.
    pub c_out: usize,
    /// The conv: plain 3x3, Inception-style block, or depthwise-separable.
    #[config(default = "ConvKind::Plain")]
    pub conv: ConvKind,
    /// Attention between the conv and its BatchNorm.
    #[config(default = "None")]
    pub attention: Option<AttentionLayerConfig>,
    /// A standard attention module (`--channel-attn`) after the study's attention, before the
    /// BatchNorm.
    #[config(default = "None")]
    pub channel_attn: Option<ChannelAttnKind>,
}

/// 3x3 conv (padding 1, no bias: BatchNorm's shift replaces it; or a multi-feature conv of the
/// same shape) -> optional attention -> BatchNorm -> ReLU.
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, c, h, w]`; `c` is `c_out`, or `2 c_out` after arch-3 attention (which
///   concatenates)
#[derive(Module, Debug)]
pub struct ConvUnit {
    conv: FeatureConv,
    attention: Option<Attention>,
    channel_attn: Option<ChannelAttn>,
    norm: BatchNorm,
    activation: Relu,
}

impl ConvUnitConfig {
    /// Channels after the attention block (what BatchNorm normalises).
    pub fn channels(&self) -> usize {
        match &self.attention {
            Some(attention) => attention.output_channels(self.c_out),
            None => self.c_out,
        }
    }

    /// Builds the unit on `device`.
    pub fn init(&self, device: &Device) -> ConvUnit {
        ConvUnit {
            conv: self.conv.init(self.c_in, self.c_out, device),
            attention: self.attention.as_ref().map(|a| a.init(device)),
            channel_attn: self
                .channel_attn
                .map(|k| k.config(self.channels()).init(device)),
            norm: BatchNormConfig::new(self.channels()).init(device),
            activation: Relu::new(),
        }
    }

    /// Forward FLOPs for an input of `[c_in, h, w]`: the conv and the attention block.
    pub fn flops(&self, [_, h, w]: [usize; 3]) -> u64 {
        let conv = self.conv.flops(self.c_in, self.c_out, [h, w]);
        let attention = self
            .attention
            .as_ref()
            .map_or(0, |a| a.flops([self.c_out, h, w]));
        let channel_attn = self.channel_attn.map_or(0, |k| {
            k.config(self.channels()).flops([self.channels(), h, w])
        });
        conv + attention + channel_attn
    }
}

impl ConvUnitConfig {
    /// Entries of the attention matrices a naive attention block materialises for `batch`
    /// inputs of `[c_in, h, w]` (0 without one, or when it is lean).
    pub fn naive_attention_elements(&self, [_, h, w]: [usize; 3], batch: usize) -> u64 {
        self.attention
            .as_ref()
            .map_or(0, |a| a.naive_matrix_elements([self.c_out, h, w], batch))
    }
}

impl ConvUnit {
    /// The feature extractor: the conv layer's output before attention, `[batch, c_out, h, w]`.
    pub fn extract(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    /// The attention block on the conv output (identity without one); `shared` holds the
    /// network's parameters shared across layers.
    pub fn attend(&self, x: Tensor<4>, shared: Option<&SharedAttention>) -> Tensor<4> {
        let x = match &self.attention {
            Some(attention) => attention.forward(x, shared), // [batch, c, h, w]
            None => x,
        };
        match &self.channel_attn {
            Some(module) => module.forward(x), // [batch, c, h, w]
            None => x,
        }
    }

    /// The attention block, if the unit has one.
    pub fn attention(&self) -> Option<&Attention> {
        self.attention.as_ref()
    }

    /// BatchNorm -> ReLU, applied to the conv output after attention: the activation Grad-CAM
    /// explains.
    pub fn activate(&self, x: Tensor<4>) -> Tensor<4> {
        // `self.activation`, a ReLU (kept for the module's record), runs fused into the
        // BatchNorm op: one pass over the activations fewer each way
        let _: &Relu = &self.activation;
        ops::batch_norm::forward_relu(&self.norm, x) // [batch, c, h, w]
    }

    /// The whole unit.
    pub fn forward(&self, x: Tensor<4>, shared: Option<&SharedAttention>) -> Tensor<4> {
        self.activate(self.attend(self.extract(x), shared))
    }

    /// The whole unit followed by its stage's 2x2 `pool`, its BatchNorm -> ReLU -> pool as one op
    /// (see [`ops::batch_norm::forward_relu_pool`]): for the last unit of a plain chain whose
    /// activation before the pool nobody looks at.
    ///
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]`; output: `[batch, c, h/2, w/2]`
    pub fn forward_pooled(
        &self,
        x: Tensor<4>,
        shared: Option<&SharedAttention>,
        pool: &MaxPool2d,
    ) -> Tensor<4> {
        let x = self.attend(self.extract(x), shared); // [batch, c, h, w]
        ops::batch_norm::forward_relu_pool(&self.norm, pool, x) // [batch, c, h/2, w/2]
    }
}
