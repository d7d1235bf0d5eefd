//! What pixel attention (the kernel of architectures 1 and 2) is computed with: the choice of
//! implementation and the one function both architectures call. Its own module so that the
//! architectures import it and [`attention`](super::attention), which picks between the
//! architectures, imports them: no module imports one that imports it back.

use burn::prelude::*;

use crate::model::ops::{self, Kernel};

/// How pixel attention (arch 1 and 2) is computed. All three compute the same function.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum AttentionImpl {
    /// Memory linear in the pixels: the backend's fastest lean kernel (CPU kernels on flex, the
    /// tiled path elsewhere).
    #[default]
    Lean,
    /// Memory linear in the pixels, from the backend's own tensor operations (what GPUs run).
    Tiled,
    /// The reference: tensor operations that keep the full pixel x pixel attention matrix.
    Naive,
}

/// `y = v softmax(scale q^T k)^T` per group, computed as `implementation` says.
///
/// # Shapes
/// - `q`, `k`: `[g, dk, n]`; `v`: `[g, dv, n]`; output `[g, dv, n]`
pub fn pixel_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    scale: f32,
    implementation: AttentionImpl,
) -> Tensor<3> {
    match implementation {
        AttentionImpl::Lean => ops::attention(q, k, v, scale, Kernel::Native),
        AttentionImpl::Tiled => ops::attention(q, k, v, scale, Kernel::Tiled),
        AttentionImpl::Naive => ops::attention_naive(q, k, v, scale),
    }
}
