//! Attention architecture 3 (study, section 4.1): attention between feature maps.
//!
//! # What it computes
//!
//! For a conv output `x` of `[batch, C, H, W]`, each of the `C` feature maps is one token, the
//! vector of its `N = H * W` values (`X`, `[C, N]` per image). With `W_q, W_k` in `R^{N x D}`
//! (`D` = `--attn-dim`, 64):
//!
//! ```text
//! q = X W_q,  k = X W_k                    // [C, D]
//! A = softmax_rows(q k^T / sqrt(D))        // [C, C]: how much map i draws on map j
//! y = A X                                  // [C, N]: the value is the token itself
//! output = concat(x, y) along channels     // [batch, 2C, H, W]
//! ```
//!
//! The output has twice the channels of the conv layer, so the BatchNorm after it, and the next
//! conv layer's input (or the classifier's), are twice as wide.
//!
//! `A` is `C x C` (at most 256 x 256 here): small, so no memory-lean kernel is needed. The block
//! is still one custom operation ([`ops::channel_attention`](crate::model::ops::channel_attention),
//! `--attn-impl lean`, the default): composed of tensor operations (`naive`, [`ChannelAttention::attend`]
//! and a concatenation) autodiff records a dozen nodes with their layout copies each way; `tiled`
//! runs the operation's portable path of backend tensor operations. Renaming the channels (a
//! permutation `P` of the maps) renames the output the same way: `block(P x) = [P x, P y]`.
//!
//! # The study's future work, as an option
//!
//! `--heads H` splits `D` into `H` heads of `D/H` (each scaled by `1/sqrt(D/H)`), each with its
//! own `C x C` attention; the value being the maps themselves, the heads' attention matrices are
//! averaged, `y = (1/H sum_h A_h) X`, so the output keeps `2C` channels and `H = 1` is exactly the
//! study's block.
//!
//! # Where the study was ambiguous, and the choices made
//!
//! - *`W_q`, `W_k` as given:* plain matrices, no bias. They depend on the layer's `N`, so every
//!   layer has its own (`2 N D` parameters: 131k at 32x32 with `D = 64`).
//! - *`D`.* Not fixed by the study: `--attn-dim`, default 64.
//! - *Initialisation.* Not stated: PyTorch's default for a linear map `N -> D`,
//!   U(-1/sqrt(N), 1/sqrt(N)).
//! - *Scaling.* `1/sqrt(D)`, as in every dot-product attention.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::pixel_attention::AttentionImpl;
use crate::model::cost;
use crate::model::ops::{Kernel, channel_attention};

/// Configuration of a [`ChannelAttention`] block.
#[derive(Config, Debug)]
pub struct ChannelAttentionConfig {
    /// Feature maps (`C`).
    pub channels: usize,
    /// Values per feature map (`N = h * w`).
    pub tokens: usize,
    /// Width `D` of the queries and keys.
    pub dim: usize,
    /// Attention heads (`D / heads` each).
    #[config(default = 1)]
    pub heads: usize,
    /// How the block is computed: lean (the operation; CPU kernels on flex), tiled (the
    /// operation's portable path), naive (tensor operations; the reference).
    #[config(default = "AttentionImpl::Lean")]
    pub implementation: AttentionImpl,
}

impl ChannelAttentionConfig {
    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> ChannelAttention {
        let projection = || {
            LinearConfig::new(self.tokens, self.dim)
                .with_bias(false)
                .init(device)
        };
        ChannelAttention {
            query: projection(),
            key: projection(),
            heads: self.heads,
            implementation: self.implementation,
        }
    }

    /// Forward FLOPs for an input of `[C, h, w]`: `q` and `k` (`[C, N] x [N, D]` each), the scores
    /// of every head (`[C, D/H] x [D/H, C]`) and `A X` (`[C, C] x [C, N]`).
    pub fn flops(&self, [c, h, w]: [usize; 3]) -> u64 {
        let n = h * w;
        let projections = 2 * cost::matmul_flops(c, n, self.dim);
        let scores = self.heads as u64 * cost::matmul_flops(c, self.dim / self.heads, c);
        projections + scores + cost::matmul_flops(c, c, n)
    }
}

/// Arch 3 after one conv layer: attention between feature maps, concatenated to its input.
///
/// # Shapes
/// - input: `[batch, C, h, w]`
/// - output: `[batch, 2C, h, w]`
#[derive(Module, Debug)]
pub struct ChannelAttention {
    /// `W_q`: `N -> D`.
    pub query: Linear,
    /// `W_k`: `N -> D`.
    pub key: Linear,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    implementation: AttentionImpl,
}

impl ChannelAttention {
    /// `concat(x, y)` for the conv output `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let kernel = match self.implementation {
            AttentionImpl::Lean => Kernel::Native,
            AttentionImpl::Tiled => Kernel::Tiled,
            AttentionImpl::Naive => {
                let y = self.attend(x.clone()); // [b, c, h, w]
                return Tensor::cat(vec![x, y], 1); // [b, 2c, h, w]
            }
        };
        let [b, c, h, w] = x.dims();
        let tokens = x.reshape([b, c, h * w]); // [b, c, n]
        let (wq, wk) = (self.query.weight.val(), self.key.weight.val()); // [n, d] each
        channel_attention(tokens, wq, wk, self.heads, kernel).reshape([b, 2 * c, h, w]) // [b, 2c, h, w]
    }

    /// The attention weights, averaged over heads: `[batch, C, C]`.
    pub fn weights(&self, x: Tensor<4>) -> Tensor<3> {
        let [b, c, h, w] = x.dims();
        let tokens = x.reshape([b, c, h * w]); // [b, c, n]
        let heads = self.heads;
        let q = self.query.forward(tokens.clone()); // [b, c, d]
        let k = self.key.forward(tokens); // [b, c, d]
        let [_, _, d] = q.dims();
        let split = |t: Tensor<3>| t.reshape([b, c, heads, d / heads]).swap_dims(1, 2); // [b, H, c, d/H]
        let scores = split(q).matmul(split(k).swap_dims(2, 3)) / ((d / heads) as f32).sqrt(); // [b, H, c, c]
        let weights = softmax(scores, 3); // [b, H, c, c], rows sum to 1
        weights.mean_dim(1).reshape([b, c, c]) // [b, c, c]
    }

    /// The attention output `y = A X` alone (no concatenation).
    pub fn attend(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let weights = self.weights(x.clone()); // [b, c, c]
        weights
            .matmul(x.reshape([b, c, h * w]))
            .reshape([b, c, h, w]) // [b, c, h, w]
    }
}
