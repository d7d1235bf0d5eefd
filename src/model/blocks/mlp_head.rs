//! The study's classifier: hidden fully-connected layers (ReLU, optional dropout), then the
//! output layer.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;

use crate::model::cost;
use crate::model::family::ClassifierHead;

/// Configuration of an [`MlpHead`].
#[derive(Config, Debug)]
pub struct MlpHeadConfig {
    /// Input features (the flattened backbone output).
    pub d_in: usize,
    /// Widths of the hidden layers (the study uses three).
    pub hidden: Vec<usize>,
    /// Classes to predict.
    pub num_classes: usize,
    /// Dropout probability before each hidden layer and the output layer; 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// Flatten -> (dropout -> linear -> ReLU) per hidden layer -> dropout -> linear.
///
/// # Shapes
/// - features: `[batch, c, h, w]` (flattened to `[batch, d_in]`, `d_in = c * h * w`)
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct MlpHead {
    hidden: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
    activation: Relu,
}

impl MlpHeadConfig {
    /// Builds the head on `device`.
    pub fn init(&self, device: &Device) -> MlpHead {
        let mut d = self.d_in;
        let mut hidden = Vec::with_capacity(self.hidden.len());
        for &width in &self.hidden {
            hidden.push(LinearConfig::new(d, width).init(device));
            d = width;
        }
        MlpHead {
            hidden,
            output: LinearConfig::new(d, self.num_classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: Relu::new(),
        }
    }

    /// Forward FLOPs per sample.
    pub fn flops(&self) -> u64 {
        let mut d = self.d_in;
        let mut total = 0;
        for &width in &self.hidden {
            total += cost::linear_flops(d, width);
            d = width;
        }
        total + cost::linear_flops(d, self.num_classes)
    }
}

impl ClassifierHead for MlpHead {
    /// Flatten: `[batch, c, h, w] -> [batch, c * h * w]`.
    fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        features.flatten(1, 3)
    }

    /// The hidden layers, then the output layer: `[batch, d_in] -> [batch, num_classes]`.
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        let mut x = pooled; // [batch, d_in]
        for layer in &self.hidden {
            x = self
                .activation
                .forward(layer.forward(self.dropout.forward(x))); // [batch, width]
        }
        self.output.forward(self.dropout.forward(x)) // [batch, num_classes]
    }
}
