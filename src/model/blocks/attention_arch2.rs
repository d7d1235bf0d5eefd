//! Attention architecture 2 (study, section 4.1): pixel attention shared by all channels, as in
//! SAGAN / non-local networks.
//!
//! # What it computes
//!
//! For a conv output `x` of `[batch, C, H, W]`, the `N = H * W` pixels are the tokens, each a
//! `C`-vector. Per layer, 1x1 convolutions (with bias) give
//!
//! ```text
//! q = W_q x + b_q,  k = W_k x + b_k        // [batch, C/r, N]   (r = --attn-reduction, 8)
//! v = W_v x + b_v                          // [batch, C, N]
//! A = softmax_rows(q^T k / sqrt(C/r))      // [batch, N, N]: one weight per pixel pair,
//!                                          //   the same for every channel
//! y = v A^T                                // [batch, C, N]: y[:, i] = sum_j A[i, j] v[:, j]
//! output = x + gamma * y                   // [batch, C, H, W]
//! ```
//!
//! `gamma` is a learnable scalar per layer; its initial value is `--attn-gamma` (1: the study's
//! plain residual `x + y`; 0: SAGAN's start from the identity).
//!
//! # The study's future work, as options
//!
//! - `--heads H`: the `C/r` query/key channels split into `H` groups of `C/(rH)` and the `C`
//!   value channels into `H` groups of `C/H`; each head has its own pixel attention (scaled by
//!   `1/sqrt(C/(rH))`), and the heads' outputs are concatenated back to `C` channels. There is
//!   no output projection, so `H = 1` is exactly the study's block.
//! - `--attn-shared true`: one set of q/k/v 1x1 convs ([`QkvConvs`], held by the network) serves
//!   every layer. The layers differ in width, so each projects its `C` channels to the common
//!   width `Cs` (`--attn-shared-width`, 64) with a 1x1 conv, attends there, and projects `y`
//!   back to `C` with another: `output = x + gamma * W_out(attend(W_in x))`.
//!
//! # Memory
//!
//! `A` has `N^2` entries per image and head (1M at 32x32). The block runs the lean
//! [pixel attention](crate::model::ops), which keeps `y` and one log-sum-exp per row for the
//! backward pass and recomputes `A` block by block; `--attn-impl naive` keeps `A` (the
//! reference).
//!
//! # Where the study was ambiguous, and the choices made
//!
//! - *Scaling.* SAGAN does not scale the scores; the study writes `sqrt(d)` attention, so the
//!   scores are divided by `sqrt(C/r)`, the query/key width.
//! - *`C/r` for widths not divisible by `r`.* Rounded down (as SAGAN's `C // 8`); a width below
//!   `r` is refused, naming the layer.
//! - *Biases.* The 1x1 convolutions have biases, as in SAGAN.
//! - *Residual weight.* The study adds `y` to `x`; SAGAN learns `gamma` from 0. Both are this
//!   block: `gamma` is learnable and starts at `--attn-gamma` (default 1, the study).

use burn::module::Param;
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::pixel_attention::{AttentionImpl, pixel_attention};
use crate::model::cost;
use crate::model::ops::conv;

/// Configuration of [`QkvConvs`].
#[derive(Config, Debug)]
pub struct QkvConvsConfig {
    /// Channels in (`C`).
    pub channels: usize,
    /// q and k have `channels / reduction` channels.
    pub reduction: usize,
}

/// The query, key and value 1x1 convolutions of arch 2.
///
/// # Shapes
/// - input: `[batch, C, h, w]`
/// - output: `q`, `k`: `[batch, C/r, h, w]`; `v`: `[batch, C, h, w]`
#[derive(Module, Debug)]
pub struct QkvConvs {
    query: Conv2d,
    key: Conv2d,
    value: Conv2d,
}

impl QkvConvsConfig {
    fn qk_channels(&self) -> usize {
        self.channels / self.reduction
    }

    /// Builds the convolutions on `device`.
    pub fn init(&self, device: &Device) -> QkvConvs {
        let conv = |c_out| Conv2dConfig::new([self.channels, c_out], [1, 1]).init(device);
        QkvConvs {
            query: conv(self.qk_channels()),
            key: conv(self.qk_channels()),
            value: conv(self.channels),
        }
    }

    /// Forward FLOPs at `[h, w]`.
    pub fn flops(&self, hw: [usize; 2]) -> u64 {
        let c = self.channels;
        2 * cost::conv2d_flops(c, self.qk_channels(), [1, 1], 1, hw)
            + cost::conv2d_flops(c, c, [1, 1], 1, hw)
    }
}

impl QkvConvs {
    /// `(q, k, v)` of a feature map.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        (
            conv::forward(&self.query, x.clone()),
            conv::forward(&self.key, x.clone()),
            conv::forward(&self.value, x),
        )
    }
}

/// Configuration of a [`PixelAttention`] block.
#[derive(Config, Debug)]
pub struct PixelAttentionConfig {
    /// Channels of the conv output (`C`).
    pub channels: usize,
    /// q and k have `C / reduction` channels (of the common width with shared q/k/v).
    #[config(default = 8)]
    pub reduction: usize,
    /// Attention heads.
    #[config(default = 1)]
    pub heads: usize,
    /// Initial value of the learnable residual weight.
    #[config(default = 1.0)]
    pub gamma: f64,
    /// With q/k/v shared across layers: the common width they work at.
    #[config(default = "None")]
    pub shared_width: Option<usize>,
    /// How pixel attention is computed.
    #[config(default = "AttentionImpl::Lean")]
    pub implementation: AttentionImpl,
}

impl PixelAttentionConfig {
    /// The width attention works at: `C`, or the common width with shared q/k/v.
    fn width(&self) -> usize {
        self.shared_width.unwrap_or(self.channels)
    }

    /// Builds the block on `device` (its own q/k/v convs unless they are shared).
    pub fn init(&self, device: &Device) -> PixelAttention {
        let projection = |c_in, c_out| Conv2dConfig::new([c_in, c_out], [1, 1]).init(device);
        let (own, project_in, project_out) = match self.shared_width {
            None => (
                Some(QkvConvsConfig::new(self.channels, self.reduction).init(device)),
                None,
                None,
            ),
            Some(width) => (
                None,
                Some(projection(self.channels, width)),
                Some(projection(width, self.channels)),
            ),
        };
        PixelAttention {
            own,
            project_in,
            project_out,
            gamma: Initializer::Constant { value: self.gamma }.init([1], device),
            heads: self.heads,
            implementation: self.implementation,
        }
    }

    /// Forward FLOPs for an input of `[C, h, w]`: the 1x1 convolutions (q/k/v, and the
    /// projections with shared q/k/v) and the products `q^T k` and `v A^T` of every head.
    pub fn flops(&self, [c, h, w]: [usize; 3]) -> u64 {
        let n = h * w;
        let width = self.width();
        let dk = width / self.reduction;
        let mut total = QkvConvsConfig::new(width, self.reduction).flops([h, w]);
        if self.shared_width.is_some() {
            total += cost::conv2d_flops(c, width, [1, 1], 1, [h, w])
                + cost::conv2d_flops(width, c, [1, 1], 1, [h, w]);
        }
        let per_head = cost::matmul_flops(n, dk / self.heads, n)
            + cost::matmul_flops(width / self.heads, n, n);
        total + self.heads as u64 * per_head
    }
}

/// Arch 2 after one conv layer: SAGAN-style pixel attention, `x + gamma * y`.
///
/// # Shapes
/// - input: `[batch, C, h, w]`
/// - output: `[batch, C, h, w]`
#[derive(Module, Debug)]
pub struct PixelAttention {
    /// This layer's q/k/v convs (absent when shared across layers).
    own: Option<QkvConvs>,
    /// With shared q/k/v: `C -> Cs` before them.
    project_in: Option<Conv2d>,
    /// With shared q/k/v: `Cs -> C` after attention.
    project_out: Option<Conv2d>,
    /// The learnable residual weight, `[1]`.
    pub gamma: Param<Tensor<1>>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    implementation: AttentionImpl,
}

impl PixelAttention {
    /// This layer's own q/k/v convs (`None` when they are shared across layers).
    pub fn own_qkv(&self) -> Option<&QkvConvs> {
        self.own.as_ref()
    }

    /// `x + gamma * y` for the conv output `x`; `shared` is the network's q/k/v when they are
    /// shared across layers.
    pub fn forward(&self, x: Tensor<4>, shared: Option<&QkvConvs>) -> Tensor<4> {
        let y = self.attend(x.clone(), shared); // [b, c, h, w]
        x + y * self.gamma.val().reshape([1, 1, 1, 1])
    }

    /// The attention output `y` alone (before `gamma` and the residual).
    pub fn attend(&self, x: Tensor<4>, shared: Option<&QkvConvs>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let (q, k, v) = match (&self.own, shared, &self.project_in) {
            (Some(own), _, _) => own.forward(x), // [b, c/r, h, w] x2, [b, c, h, w]
            (None, Some(shared), Some(project_in)) => shared.forward(conv::forward(project_in, x)), // at width cs
            _ => unreachable!(
                "a block without its own q/k/v is built with a projection and given the shared ones"
            ),
        };
        let heads = self.heads;
        let [_, dk, _, _] = q.dims();
        let [_, width, _, _] = v.dims();
        let q = q.reshape([b * heads, dk / heads, n]); // [b*H, dk/H, n]
        let k = k.reshape([b * heads, dk / heads, n]); // [b*H, dk/H, n]
        let v = v.reshape([b * heads, width / heads, n]); // [b*H, width/H, n]
        let scale = 1.0 / ((dk / heads) as f32).sqrt();
        let y = pixel_attention(q, k, v, scale, self.implementation); // [b*H, width/H, n]
        let y = y.reshape([b, width, h, w]); // heads concatenated along channels
        match &self.project_out {
            Some(project_out) => conv::forward(project_out, y), // [b, c, h, w]
            None => {
                debug_assert_eq!(width, c);
                y
            }
        }
    }
}
