//! The contract every network family keeps (`src/model/nets/`, one file per family).
//!
//! A family is a configuration ([`ImageClassifierConfig`]: what it costs, which layers it names,
//! how it is built) and the network it builds ([`ImageClassifier`]). Every network splits into a
//! backbone (`forward_features`) and a classifier head; the head splits again into a
//! parameter-free pooling (`pool_features`) and the trainable classifier (`classify`), so pooled
//! features can be computed once and cached for a linear probe, and the backbone can be frozen
//! while the head trains. The head is a [`ClassifierHead`], so a family writes its backbone and
//! picks a head; the rest of the forward pass is the provided methods here.
//!
//! [`Network`](super::Network) and [`NetworkConfig`](super::NetworkConfig) hold any family and
//! forward to these traits.

use burn::prelude::*;

use super::tap::{LayerTap, NoTap};
use crate::error::Result;

/// The configuration of a network family: checks, cost, named layers, and the network it builds.
pub trait ImageClassifierConfig {
    /// The network this configuration builds.
    type Network: ImageClassifier;

    /// Checks the configuration (what `init` would refuse), with a message naming the flag.
    fn validate(&self) -> Result<()>;

    /// Builds the network on `device`.
    fn init(&self, device: &Device) -> Result<Self::Network>;

    /// Forward FLOPs per image (see [`crate::model::cost`]).
    fn flops(&self) -> u64;

    /// `[channels, height, width]` of the backbone's output for the configured input.
    fn feature_shape(&self) -> [usize; 3];

    /// Names of the layers Grad-CAM and probes can tap, in forward order: exactly the names the
    /// network passes to a [`LayerTap`] (a test holds every registered model to this).
    fn layer_names(&self) -> Vec<String>;

    /// The layer Grad-CAM explains unless told otherwise. By default the last named layer: the
    /// backbone's final feature map, as Grad-CAM's authors use.
    fn cam_layer(&self) -> String {
        self.layer_names().pop().unwrap_or_default()
    }

    /// Entries of the pixel x pixel attention matrices naive attention materialises for a batch
    /// of `batch` images; 0 for a family without pixel attention.
    fn naive_attention_elements(&self, _batch: usize) -> u64 {
        0
    }
}

/// A network family's forward pass, split into backbone and head.
///
/// # Shapes
/// - images: `[batch, c, h, w]` (the configuration's input)
/// - features (`forward_features`): `[batch, c', h', w']`, the configuration's `feature_shape`
/// - pooled (`pool_features`): `[batch, d]`
/// - logits (`classify`, `forward`): `[batch, num_classes]`
pub trait ImageClassifier: Module {
    /// The classifier head: pooling and the trainable classifier.
    type Head: ClassifierHead;

    /// The backbone, showing the activation of each named layer (the configuration's
    /// `layer_names`, in that order) to `tap` and continuing with what it returns (see
    /// [`crate::model::tap`]).
    fn forward_features_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<4>;

    /// The classifier head.
    fn head(&self) -> &Self::Head;

    /// Freezes the backbone: its weights stop receiving gradients and its BatchNorm layers use
    /// (and keep) their running statistics, so only the head trains. Each family lists its
    /// backbone's fields, since only it knows which are the head.
    fn freeze_backbone(self) -> Self;

    /// The backbone: `[batch, c, h, w] -> [batch, c', h', w']`.
    fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        self.forward_features_tapped(images, &mut NoTap)
    }

    /// The head's parameter-free part: `[batch, c', h', w'] -> [batch, d]`.
    fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
        self.head().pool_features(features)
    }

    /// The head's trainable part: `[batch, d] -> [batch, num_classes]`.
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.head().classify(pooled)
    }

    /// Logits from backbone features: `[batch, c', h', w'] -> [batch, num_classes]`.
    fn forward_head(&self, features: Tensor<4>) -> Tensor<2> {
        self.classify(self.pool_features(features))
    }

    /// Logits, showing the activation of each named layer to `tap` on the way. The plain
    /// `forward` is this with [`NoTap`], so the tapped and the untapped pass are one code path.
    fn forward_tapped(&self, images: Tensor<4>, tap: &mut dyn LayerTap) -> Tensor<2> {
        self.forward_head(self.forward_features_tapped(images, tap))
    }

    /// Logits for a batch of images: `[batch, c, h, w] -> [batch, num_classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_tapped(images, &mut NoTap)
    }
}

/// A classifier head: a parameter-free pooling of the backbone's feature map, then the
/// trainable classifier.
///
/// # Shapes
/// - features: `[batch, c, h, w]`
/// - pooled: `[batch, d]`
/// - logits: `[batch, num_classes]`
pub trait ClassifierHead {
    /// The parameter-free part (global average pool, flatten, ...).
    fn pool_features(&self, features: Tensor<4>) -> Tensor<2>;

    /// The trainable part, on pooled features.
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2>;
}
