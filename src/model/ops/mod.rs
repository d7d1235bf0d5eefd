//! visionnet's custom burn operations, each with its own backward pass and its own CPU kernels,
//! as burn backend extensions: one folder or file per operation, holding only the burn glue
//! (the extension trait, the `flex` implementation that turns tensors into slices, the autodiff
//! step, the module-level calls). The kernels themselves, slice in and slice out, with their
//! AVX-512 / AVX2 / portable bodies, are the `visionnet-kernels` crate (`crates/kernels`).
//!
//! - [`attention`]: memory-lean softmax attention over the pixels of a feature map (arch 1, 2);
//!   [`attention::tiled`] is its portable path on any backend.
//! - [`channel_attention`]: attention architecture 3 as one operation (`[X; A X]`).
//! - [`conv`]: 2D convolution with its own backward pass (im2col or Winograd on flex).
//! - [`batch_norm`]: training-mode BatchNorm, and BatchNorm -> ReLU fused.
//! - [`max_pool`]: max-pooling that keeps no indices.
//! - [`flex`]: what they share: `flex` tensors to and from `f32` slices.
//!
//! On every other backend (wgpu, cuda, tch) the traits' default bodies run: burn's own ops, or
//! for attention the tiled path.

pub mod attention;
pub mod batch_norm;
pub mod channel_attention;
pub mod conv;
pub mod flex;
pub mod max_pool;

pub use attention::{
    AttentionOps, Kernel, attention, attention_backward, attention_forward, attention_naive,
};
pub use channel_attention::{ChannelAttentionOps, channel_attention};
