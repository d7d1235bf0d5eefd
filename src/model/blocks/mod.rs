//! Building blocks of the study's networks and the baselines.
//!
//! - [`conv_unit`]: the study's conv layer: 3x3 conv -> optional attention -> BatchNorm -> ReLU
//!   -> optional 2x2 max-pool.
//! - [`attention`]: what the three attention architectures share (options, the per-layer block,
//!   the parameters shared across layers); [`attention_arch1`], [`attention_arch2`],
//!   [`attention_arch3`]: the study's three architectures (section 4.1), one file each;
//!   [`pixel_attention`]: the implementation choice and the call arch 1 and 2 share.
//! - [`channel_attn`]: the standard attention modules as references (`--channel-attn`): SE,
//!   ECA, CBAM, GC, after timm.
//! - [`mlp_head`]: the study's classifier: hidden fully-connected layers, then the output layer.
//! - [`conv_bn`]: conv -> BatchNorm -> activation with explicit (also TF-"SAME") padding.
//! - [`separable`]: Xception's depthwise-separable conv (also `--conv separable`).
//! - [`classifier`]: global average pool -> dropout -> linear.
//! - [`resize`]: bilinear input resizing for ImageNet backbones (`--resize`).
//! - [`lateral`]: lateral connections within a stage: residual, dense (`--lateral`).
//! - [`inception`]: the Inception-style multi-feature block.
//! - [`multi_feature`]: which conv a unit uses: plain, inception, separable (`--conv`).

pub mod attention;
pub mod attention_arch1;
pub mod attention_arch2;
pub mod attention_arch3;
pub mod channel_attn;
pub mod classifier;
pub mod conv_bn;
pub mod conv_unit;
pub mod inception;
pub mod lateral;
pub mod mlp_head;
pub mod multi_feature;
pub mod pixel_attention;
pub mod resize;
pub mod separable;

pub use attention::{
    Attention, AttentionArch, AttentionConfig, AttentionImpl, AttentionLayerConfig,
    SharedAttention, SharedAttentionConfig,
};
pub use attention_arch1::{ScalarAttention, ScalarAttentionConfig, ScalarQkv};
pub use attention_arch2::{PixelAttention, PixelAttentionConfig, QkvConvs, QkvConvsConfig};
pub use attention_arch3::{ChannelAttention, ChannelAttentionConfig};
pub use channel_attn::{ChannelAttn, ChannelAttnConfig, ChannelAttnKind};
pub use classifier::{PoolClassifier, PoolClassifierConfig, global_avg_pool};
pub use conv_bn::{Activation, ConvBn, ConvBnConfig};
pub use conv_unit::{ConvUnit, ConvUnitConfig};
pub use inception::{Inception, InceptionConfig};
pub use lateral::{Lateral, LateralConfig, LateralKind};
pub use mlp_head::{MlpHead, MlpHeadConfig};
pub use multi_feature::{ConvKind, FeatureConv};
pub use resize::Resize;
pub use separable::{SeparableConv, SeparableConvConfig};
