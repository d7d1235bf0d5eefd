//! The slice-level CPU kernels behind visionnet's custom burn operations (`model::ops` in the
//! main crate holds their burn glue: backend extensions, autodiff steps, tensor conversions).
//! Everything here takes and returns plain contiguous `f32` slices; nothing depends on burn.
//!
//! - [`simd`]: which vector instructions run (AVX-512, AVX2 + FMA, portable), chosen once at
//!   run time; `VISIONNET_SIMD` caps it.
//! - [`attention`]: memory-lean softmax attention over the pixels of a feature map, forward and
//!   backward (arch 1's outer-product kernel, arch 2's dense one).
//! - [`channel_attention`]: attention architecture 3 (feature maps as tokens, output
//!   concatenated to the input), forward and backward.
//! - [`conv`]: 2D convolution as im2col / col2im and one matrix product per pass, and
//!   [`conv::winograd`] (F(4x4, 3x3)) for 3x3 stride-1 convs with its tile transforms and
//!   channels-last copies.
//! - [`batch_norm`]: BatchNorm's passes (training and inference), with the fused BatchNorm -> ReLU.
//! - [`max_pool`]: max-pooling, with vector kernels for the 2x2, stride-2 window.
//! - [`optimizer`]: Adam's and SGD's updates as one pass over each parameter, bit-for-bit burn's.
//! - [`matmul`]: the strided single-threaded matrix product they share (`gemm`).
//! - [`output`]: output buffers zeroed by the tasks that fill them, not serially before.
//! - `scratch` (crate-private): each thread's reusable scratch buffer.
//! - `vector` (x86-64, crate-private): the AVX2 and AVX-512 primitives the vector kernels are written in.
//!
//! Every kernel with vector bodies has a portable one too, and the tests hold each path the CPU
//! runs to the portable one (`--nocapture` prints which paths ran).

pub mod attention;
pub mod batch_norm;
pub mod channel_attention;
pub mod conv;
pub mod matmul;
pub mod max_pool;
pub mod optimizer;
pub mod output;
mod scratch;
pub mod simd;
#[cfg(test)]
mod test_values;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vector;
