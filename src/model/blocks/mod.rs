//! Building blocks of the study's networks.
//!
//! - [`conv_unit`]: the study's conv layer: 3x3 conv -> optional attention -> BatchNorm -> ReLU
//!   -> optional 2x2 max-pool.
//! - [`attention`]: what the three attention architectures share (options, the per-layer block,
//!   the parameters shared across layers); [`attention_arch1`], [`attention_arch2`],
//!   [`attention_arch3`]: the study's three architectures (section 4.1), one file each.
//! - [`mlp_head`]: the study's classifier: hidden fully-connected layers, then the output layer.

pub mod attention;
pub mod attention_arch1;
pub mod attention_arch2;
pub mod attention_arch3;
pub mod conv_unit;
pub mod mlp_head;

pub use attention::{
    Attention, AttentionArch, AttentionConfig, AttentionImpl, AttentionLayerConfig, SharedAttention, SharedAttentionConfig,
};
pub use attention_arch1::{ScalarAttention, ScalarAttentionConfig, ScalarQkv};
pub use attention_arch2::{PixelAttention, PixelAttentionConfig, QkvConvs, QkvConvsConfig};
pub use attention_arch3::{ChannelAttention, ChannelAttentionConfig};
pub use conv_unit::{ConvUnit, ConvUnitConfig};
pub use mlp_head::{MlpHead, MlpHeadConfig};
