//! Attention architecture 1 (study, section 4.1): per-channel pixel attention with scalar q, k,
//! v shared by every layer.
//!
//! # What it computes
//!
//! For a conv output `x` of `[batch, C, H, W]`, each channel `c` of each image is its own
//! sequence of `N = H * W` tokens, one scalar per pixel (`x_c`, `[N]`):
//!
//! ```text
//! q_c = a_q x_c + b_q      k_c = a_k x_c + b_k      v_c = a_v x_c + b_v      // [N] each
//! A_c = softmax_rows(q_c k_c^T / sqrt(d)),  d = 1                             // [N, N]
//! y_c = A_c v_c                                                                // [N]
//! output = x + y                                                               // [batch, C, H, W]
//! ```
//!
//! The six numbers `a_q, b_q, a_k, b_k, a_v, b_v` are one parameter set ([`ScalarQkv`]), held
//! once by the network and used by the block of every conv layer: a 1x1x1 kernel fits any
//! channel count, which is why the study chose it. The attention weights still differ per
//! channel and per image, since they come from that channel's pixels.
//!
//! # Memory
//!
//! `A_c` has `N^2` entries per channel: at 32x32 (`N = 1024`) with 32 channels that is 32M
//! floats per image, and autodiff would keep two such tensors per image. The block therefore
//! runs the lean [pixel attention](crate::model::ops) (with `dk = dv = 1`), which keeps only
//! `y` and one log-sum-exp per row and recomputes `A_c` in the backward pass; on the CPU its
//! kernel exploits that `q_c k_c^T` is an outer product. `--attn-impl naive` keeps `A_c` (the
//! reference).
//!
//! # Where the study was ambiguous, and the choices made
//!
//! - *Kernels with or without bias.* A 1x1x1 convolution has a bias by default and the study
//!   counts q, k, v as kernels: each is `weight * x + bias`, six numbers in all.
//! - *Initialisation.* Not stated. Weights and biases are drawn from U(-1, 1), PyTorch's
//!   default for a 1x1x1 `Conv3d` (fan-in 1), presumably what the study's code used.
//! - *Scaling.* `sqrt(d)` with `d = 1` (the key width) is 1: no scaling.
//! - *Softmax axis.* Over keys (each query pixel's weights sum to 1), as in every
//!   self-attention.
//! - *Residual.* Plain `x + y`, no learnable weight, as described.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;

use super::pixel_attention::{AttentionImpl, pixel_attention};
use crate::model::cost;

/// The six scalars of arch 1: q, k, v each `weight * x + bias`. One set per network.
#[derive(Module, Debug)]
pub struct ScalarQkv {
    /// `[a_q, a_k, a_v]`.
    pub weight: Param<Tensor<1>>,
    /// `[b_q, b_k, b_v]`.
    pub bias: Param<Tensor<1>>,
}

impl ScalarQkv {
    /// Draws the six scalars from U(-1, 1) (PyTorch's initialisation of a 1x1x1 `Conv3d`).
    pub fn init(device: &Device) -> Self {
        let uniform = Initializer::Uniform {
            min: -1.0,
            max: 1.0,
        };
        Self {
            weight: uniform.init([3], device),
            bias: uniform.init([3], device),
        }
    }

    /// `q`, `k`, `v` of scalar tokens.
    ///
    /// # Shapes
    /// - `tokens`: `[g, 1, n]`
    /// - output: three `[g, 1, n]`
    pub fn project(&self, tokens: Tensor<3>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let weight = self.weight.val().reshape([3, 1, 1]); // [3, 1, 1]
        let bias = self.bias.val().reshape([3, 1, 1]); // [3, 1, 1]
        let affine = |i: usize| {
            let a = weight.clone().slice(i..i + 1); // [1, 1, 1]
            let b = bias.clone().slice(i..i + 1); // [1, 1, 1]
            tokens.clone() * a + b // [g, 1, n]
        };
        (affine(0), affine(1), affine(2))
    }
}

/// Configuration of an arch-1 block (its parameters are the network's [`ScalarQkv`]).
#[derive(Config, Debug)]
pub struct ScalarAttentionConfig {
    /// How pixel attention is computed.
    #[config(default = "AttentionImpl::Lean")]
    pub implementation: AttentionImpl,
}

impl ScalarAttentionConfig {
    /// Builds the block.
    pub fn init(&self) -> ScalarAttention {
        ScalarAttention {
            implementation: self.implementation,
        }
    }

    /// Forward FLOPs for an input of `[c, h, w]`: the three scalar affine maps (one
    /// multiply-add per pixel each, as a 1x1x1 convolution) and per channel the products
    /// `q k^T` (`[N, 1] x [1, N]`) and `A v` (`[N, N] x [N, 1]`).
    pub fn flops(&self, [c, h, w]: [usize; 3]) -> u64 {
        let n = h * w;
        let projections = 3 * cost::conv2d_flops(1, 1, [1, 1], 1, [h, w]);
        let products = cost::matmul_flops(n, 1, n) + cost::matmul_flops(n, n, 1);
        c as u64 * (projections + products)
    }
}

/// Arch 1 after one conv layer: per-channel pixel attention with the network's shared scalar
/// q, k, v, added to its input.
///
/// # Shapes
/// - input: `[batch, c, h, w]`
/// - output: `[batch, c, h, w]`
#[derive(Module, Debug)]
pub struct ScalarAttention {
    #[module(skip)]
    implementation: AttentionImpl,
}

impl ScalarAttention {
    /// `x + y` for the conv output `x`, with the shared scalars `qkv`.
    pub fn forward(&self, x: Tensor<4>, qkv: &ScalarQkv) -> Tensor<4> {
        self.attend(x.clone(), qkv) + x
    }

    /// The attention output `y` alone (no residual).
    pub fn attend(&self, x: Tensor<4>, qkv: &ScalarQkv) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let tokens = x.reshape([b * c, 1, h * w]); // [b*c, 1, n]: one sequence per channel
        let (q, k, v) = qkv.project(tokens); // [b*c, 1, n] each
        let y = pixel_attention(q, k, v, 1.0, self.implementation); // [b*c, 1, n]; scale 1/sqrt(1)
        y.reshape([b, c, h, w])
    }
}
