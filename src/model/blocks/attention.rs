//! What the study's three attention architectures share: the network-wide options, the
//! per-layer block (one of the three) and the parameters shared across layers. This module
//! dispatches to the architectures; the pixel-attention call that arch 1 and 2 both make, and
//! its choice of implementation, is [`pixel_attention`](super::pixel_attention) (re-exported
//! here), so no architecture imports this module back.
//!
//! The study (section 4.1) puts a self-attention block right after the output of every conv
//! layer, before its BatchNorm:
//!
//! ```text
//! conv -> attention -> BatchNorm -> ReLU -> pool
//! ```
//!
//! - [arch 1](super::attention_arch1): per-channel pixel attention, scalar q, k, v shared by
//!   every layer; output `x + y`.
//! - [arch 2](super::attention_arch2): pixel attention shared by all channels (SAGAN / non-local);
//!   output `x + gamma y`.
//! - [arch 3](super::attention_arch3): attention between feature maps; output `[x, y]` (channels
//!   double).

use burn::prelude::*;

use super::attention_arch1::{ScalarAttention, ScalarAttentionConfig, ScalarQkv};
use super::attention_arch2::{PixelAttention, PixelAttentionConfig, QkvConvs, QkvConvsConfig};
use super::attention_arch3::{ChannelAttention, ChannelAttentionConfig};
pub use super::pixel_attention::{AttentionImpl, pixel_attention};
use crate::error::{Error, Result};

/// Which of the study's attention architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttentionArch {
    /// Per-channel pixel attention with shared scalar q, k, v.
    Arch1,
    /// Pixel attention shared by all channels (SAGAN / non-local).
    Arch2,
    /// Attention between feature maps, concatenated to the input.
    Arch3,
}

/// The network-wide attention options; [`AttentionConfig::layer`] makes each layer's block.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// The architecture.
    pub arch: AttentionArch,
    /// Implementation of the attention: pixel attention (arch 1, 2) or arch 3's block.
    #[config(default = "AttentionImpl::Lean")]
    pub implementation: AttentionImpl,
    /// Heads (arch 2, 3).
    #[config(default = 1)]
    pub heads: usize,
    /// Arch 2: q and k have `C / reduction` channels.
    #[config(default = 8)]
    pub reduction: usize,
    /// Arch 2: initial value of the learnable residual weight gamma (1: the study's `x + y`).
    #[config(default = 1.0)]
    pub gamma: f64,
    /// Arch 2: share one set of q/k/v 1x1 convs across layers, each layer projecting its
    /// channels to this common width and back.
    #[config(default = "None")]
    pub shared_width: Option<usize>,
    /// Arch 3: width D of the queries and keys.
    #[config(default = 64)]
    pub dim: usize,
}

/// Configuration of one layer's attention block.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum AttentionLayerConfig {
    /// Arch 1.
    Arch1(ScalarAttentionConfig),
    /// Arch 2.
    Arch2(PixelAttentionConfig),
    /// Arch 3.
    Arch3(ChannelAttentionConfig),
}

impl AttentionConfig {
    /// Checks the options against the conv layers' widths, naming the flag at fault.
    pub fn validate(&self, widths: &[usize]) -> Result<()> {
        let divides = |flag: &str, what: &str, c: usize, layer: usize| -> Result<()> {
            if !c.is_multiple_of(self.heads) {
                return Err(Error::invalid(
                    flag,
                    format!(
                        "{} heads do not divide the {c} {what} of conv layer {layer}",
                        self.heads
                    ),
                ));
            }
            Ok(())
        };
        if self.heads == 0 {
            return Err(Error::invalid("--heads", "needs at least 1 head"));
        }
        match self.arch {
            AttentionArch::Arch1 => {
                if self.heads != 1 {
                    return Err(Error::invalid(
                        "--heads",
                        "arch 1 (attn1) has scalar q and k (d = 1): it has one head",
                    ));
                }
            }
            AttentionArch::Arch2 => {
                if self.reduction == 0 {
                    return Err(Error::invalid("--attn-reduction", "must be at least 1"));
                }
                if !self.gamma.is_finite() {
                    return Err(Error::invalid(
                        "--attn-gamma",
                        format!("{} is not a finite number", self.gamma),
                    ));
                }
                let layer_widths: Vec<(usize, usize)> = match self.shared_width {
                    Some(0) => {
                        return Err(Error::invalid("--attn-shared-width", "must be at least 1"));
                    }
                    Some(width) => vec![(width, 0)],
                    None => widths
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| (c, i + 1))
                        .collect(),
                };
                for (c, layer) in layer_widths {
                    let flag = if layer == 0 {
                        "--attn-shared-width"
                    } else {
                        "--attn-reduction"
                    };
                    let dk = c / self.reduction;
                    if dk == 0 {
                        let what = if layer == 0 {
                            "the shared width".to_string()
                        } else {
                            format!("conv layer {layer}")
                        };
                        return Err(Error::invalid(
                            flag,
                            format!(
                                "reduction {} leaves {what} ({c} channels) with no query/key channels",
                                self.reduction
                            ),
                        ));
                    }
                    let layer_name = layer.max(1);
                    divides("--heads", "query/key channels", dk, layer_name)?;
                    divides("--heads", "channels", c, layer_name)?;
                }
            }
            AttentionArch::Arch3 => {
                if self.dim == 0 {
                    return Err(Error::invalid("--attn-dim", "must be at least 1"));
                }
                if !self.dim.is_multiple_of(self.heads) {
                    return Err(Error::invalid(
                        "--heads",
                        format!("{} heads do not divide --attn-dim {}", self.heads, self.dim),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The block after a conv layer with `channels` outputs of `[h, w]` pixels.
    pub fn layer(&self, channels: usize, [h, w]: [usize; 2]) -> AttentionLayerConfig {
        match self.arch {
            AttentionArch::Arch1 => AttentionLayerConfig::Arch1(
                ScalarAttentionConfig::new().with_implementation(self.implementation),
            ),
            AttentionArch::Arch2 => AttentionLayerConfig::Arch2(
                PixelAttentionConfig::new(channels)
                    .with_reduction(self.reduction)
                    .with_heads(self.heads)
                    .with_gamma(self.gamma)
                    .with_shared_width(self.shared_width)
                    .with_implementation(self.implementation),
            ),
            AttentionArch::Arch3 => AttentionLayerConfig::Arch3(
                ChannelAttentionConfig::new(channels, h * w, self.dim)
                    .with_heads(self.heads)
                    .with_implementation(self.implementation),
            ),
        }
    }

    /// Parameters shared by every layer's block, if the architecture has any.
    pub fn shared(&self) -> Option<SharedAttentionConfig> {
        match (self.arch, self.shared_width) {
            (AttentionArch::Arch1, _) => Some(SharedAttentionConfig::Arch1),
            (AttentionArch::Arch2, Some(width)) => Some(SharedAttentionConfig::Arch2(
                QkvConvsConfig::new(width, self.reduction),
            )),
            _ => None,
        }
    }
}

impl AttentionLayerConfig {
    /// Channels out of the block for `channels` in.
    pub fn output_channels(&self, channels: usize) -> usize {
        match self {
            AttentionLayerConfig::Arch3(_) => 2 * channels,
            _ => channels,
        }
    }

    /// Forward FLOPs for an input of `[channels, h, w]`.
    pub fn flops(&self, shape: [usize; 3]) -> u64 {
        match self {
            AttentionLayerConfig::Arch1(c) => c.flops(shape),
            AttentionLayerConfig::Arch2(c) => c.flops(shape),
            AttentionLayerConfig::Arch3(c) => c.flops(shape),
        }
    }

    /// Entries of the pixel x pixel attention matrices the naive implementation materialises
    /// for a batch of `batch` inputs of `[channels, h, w]` (one `n x n` matrix per channel for
    /// arch 1, per head for arch 2); 0 for the lean implementations and arch 3.
    pub fn naive_matrix_elements(&self, [c, h, w]: [usize; 3], batch: usize) -> u64 {
        let n2 = ((h * w) as u64).pow(2);
        match self {
            AttentionLayerConfig::Arch1(a) if a.implementation == AttentionImpl::Naive => {
                (batch * c) as u64 * n2
            }
            AttentionLayerConfig::Arch2(a) if a.implementation == AttentionImpl::Naive => {
                (batch * a.heads) as u64 * n2
            }
            _ => 0,
        }
    }

    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> Attention {
        match self {
            AttentionLayerConfig::Arch1(c) => Attention::Arch1(c.init()),
            AttentionLayerConfig::Arch2(c) => Attention::Arch2(c.init(device)),
            AttentionLayerConfig::Arch3(c) => Attention::Arch3(c.init(device)),
        }
    }
}

/// Configuration of the parameters shared across layers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum SharedAttentionConfig {
    /// Arch 1's six scalars.
    Arch1,
    /// Arch 2's shared q/k/v 1x1 convs at the common width.
    Arch2(QkvConvsConfig),
}

impl SharedAttentionConfig {
    /// Builds the shared parameters on `device`.
    pub fn init(&self, device: &Device) -> SharedAttention {
        match self {
            SharedAttentionConfig::Arch1 => SharedAttention::Arch1(ScalarQkv::init(device)),
            SharedAttentionConfig::Arch2(c) => SharedAttention::Arch2(c.init(device)),
        }
    }
}

/// Parameters shared by the attention blocks of every layer.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a layer choice, built once per network: boxing saves nothing that matters
pub enum SharedAttention {
    /// Arch 1: the six scalars of q, k, v.
    Arch1(ScalarQkv),
    /// Arch 2 with `--attn-shared`: the q/k/v 1x1 convs at the common width.
    Arch2(QkvConvs),
}

/// One layer's attention block.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a layer choice, built once per network: boxing saves nothing that matters
pub enum Attention {
    /// Arch 1.
    Arch1(ScalarAttention),
    /// Arch 2.
    Arch2(PixelAttention),
    /// Arch 3.
    Arch3(ChannelAttention),
}

impl Attention {
    /// Attention on a conv layer's output; `shared` holds the network's shared parameters.
    ///
    /// # Shapes
    /// - `x`: `[batch, c, h, w]`
    /// - output: `[batch, c, h, w]` (arch 1, 2) or `[batch, 2c, h, w]` (arch 3)
    pub fn forward(&self, x: Tensor<4>, shared: Option<&SharedAttention>) -> Tensor<4> {
        match (self, shared) {
            (Attention::Arch1(block), Some(SharedAttention::Arch1(qkv))) => block.forward(x, qkv),
            (Attention::Arch2(block), None) => block.forward(x, None),
            (Attention::Arch2(block), Some(SharedAttention::Arch2(qkv))) => {
                block.forward(x, Some(qkv))
            }
            (Attention::Arch3(block), None) => block.forward(x),
            _ => unreachable!("the network builds each block with the shared parameters it needs"),
        }
    }
}
