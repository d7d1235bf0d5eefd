//! What a model costs: the forward FLOPs of its layers, counted analytically, and its trainable
//! parameters, counted on the built network.
//!
//! FLOPs count a multiply-add as 2 (the convention of fvcore and ptflops x2) and cover the
//! matrix work: convolutions, linear layers and the matrix products of attention. Element-wise
//! work (BatchNorm, ReLU, pooling, softmax) is a few percent of the total and is not counted.

use burn::prelude::*;

use super::family::ImageClassifierConfig;
use super::network::Network;
use super::options::ModelSpec;
use super::table::{entry, network_config};
use crate::error::Result;

/// FLOPs of a 2-D convolution producing `[c_out, h_out, w_out]` from `c_in` channels.
pub fn conv2d_flops(
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    groups: usize,
    out_hw: [usize; 2],
) -> u64 {
    2 * (c_in / groups) as u64
        * kernel[0] as u64
        * kernel[1] as u64
        * c_out as u64
        * out_hw[0] as u64
        * out_hw[1] as u64
}

/// FLOPs of a linear layer `d_in -> d_out` for one sample.
pub fn linear_flops(d_in: usize, d_out: usize) -> u64 {
    2 * d_in as u64 * d_out as u64
}

/// FLOPs of a matrix product `[m, k] x [k, n]`.
pub fn matmul_flops(m: usize, k: usize, n: usize) -> u64 {
    2 * m as u64 * k as u64 * n as u64
}

/// Output side of a 2x2, stride-2 max-pool (floor).
pub fn pooled(side: usize) -> usize {
    side / 2
}

/// Output side of a convolution or pooling window: `(side + padding - kernel) / stride + 1`,
/// 0 when the window does not fit.
pub fn conv_out(side: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (side + padding)
        .checked_sub(kernel)
        .map_or(0, |r| r / stride + 1)
}

/// Counts the values of trainable parameters (not BatchNorm's running statistics), as
/// PyTorch's `sum(p.numel() for p in model.parameters())` does. Parameters not initialised yet
/// are counted from their shapes (a fresh parameter trains), so counting a fresh VGG-16 does not
/// draw its 138M random values.
struct TrainableCount(usize);

impl burn::module::ModuleVisitor for TrainableCount {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if !param.is_initialized() {
            self.0 += param.lazy_shape().num_elements();
        } else if param.val().is_require_grad() {
            self.0 += param.val().shape().num_elements();
        }
    }
}

/// Trainable parameter values of `model` (built on an autodiff device).
pub fn trainable_params(model: &Network) -> usize {
    let mut count = TrainableCount(0);
    model.visit(&mut count);
    count.0
}

/// Parameters and FLOPs of a model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelCost {
    /// Name in the model table.
    pub name: String,
    /// One line on what it is.
    pub summary: String,
    /// Trainable parameter values.
    pub params: usize,
    /// Forward FLOPs per image.
    pub flops: u64,
}

impl ModelCost {
    /// Parameters and FLOPs of `spec` for `num_classes` classes and `[c, h, w]` inputs.
    pub fn of(
        spec: &ModelSpec,
        num_classes: usize,
        input: [usize; 3],
        device: &Device,
    ) -> Result<ModelCost> {
        let config = network_config(spec, num_classes, input)?;
        let entry = entry(&spec.name)?;
        Ok(ModelCost {
            name: entry.name.to_string(),
            summary: entry.summary.to_string(),
            params: trainable_params(&config.init(&device.clone().autodiff())?),
            flops: config.flops(),
        })
    }
}
