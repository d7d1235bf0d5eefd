//! The classifier head of ResNet, Xception and EfficientNet: global average pooling, dropout,
//! one linear layer. Pooling has no parameters, so pooled features can be computed once and
//! cached for a linear probe.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::model::cost;
use crate::model::family::ClassifierHead;

/// Configuration of a [`PoolClassifier`].
#[derive(Config, Debug)]
pub struct PoolClassifierConfig {
    /// Channels of the backbone's feature map.
    pub d_in: usize,
    /// Classes to predict.
    pub num_classes: usize,
    /// Dropout before the linear layer; 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// Global average pool -> dropout -> linear.
///
/// # Shapes
/// - features: `[batch, d_in, h, w]`
/// - pooled: `[batch, d_in]`
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct PoolClassifier {
    dropout: Dropout,
    /// The output layer (`fc` in torchvision and timm).
    pub fc: Linear,
}

impl PoolClassifierConfig {
    /// Builds the head on `device`.
    pub fn init(&self, device: &Device) -> PoolClassifier {
        PoolClassifier {
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(self.d_in, self.num_classes).init(device),
        }
    }

    /// Forward FLOPs per image.
    pub fn flops(&self) -> u64 {
        cost::linear_flops(self.d_in, self.num_classes)
    }
}

/// Global average pooling: `[batch, c, h, w] -> [batch, c]`.
pub fn global_avg_pool(features: Tensor<4>) -> Tensor<2> {
    features.mean_dim(3).mean_dim(2).flatten(1, 3) // [batch, c]
}

impl ClassifierHead for PoolClassifier {
    /// Global average pool: `[batch, d_in, h, w] -> [batch, d_in]`.
    fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        global_avg_pool(features)
    }

    /// Dropout, then the output layer: `[batch, d_in] -> [batch, num_classes]`.
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.fc.forward(self.dropout.forward(pooled))
    }
}
