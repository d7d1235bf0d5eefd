//! Named activations: a forward pass that shows the activation of each named layer to a
//! [`LayerTap`], which may record it or swap it for a gradient leaf.
//!
//! This is how Grad-CAM reads a conv layer's activation `A` and the gradient `dy_c / dA` of a
//! class score, for any network family, without forward hooks (burn has none) and without
//! splitting a network in two (which skip connections and attention make awkward).
//!
//! # What a network does
//! A network ([`ImageClassifier`](super::ImageClassifier)) offers `forward_tapped(images, tap)`
//! (and `forward_features_tapped` for its backbone) and, at every layer its configuration names
//! in `layer_names`, in that order, writes
//!
//! ```ignore
//! let x = tap.layer("conv4", x); // [batch, c, h, w]: continue with what the tap returns
//! ```
//!
//! Its plain `forward` is `forward_tapped` with [`NoTap`], so the tapped and the untapped pass
//! are one code path. The activation a name stands for is the one a researcher would hand to
//! Grad-CAM: a layer's output after its non-linearity, before any down-sampling (a model family
//! documents its own choice next to its `layer_names`). A test runs every registered model with
//! a [`Recorder`] and checks that it sees exactly its `layer_names`, in order.
//!
//! # How the gradient is reached
//! burn's autodiff keeps gradients only of leaves that require them, so [`Capture`] turns the
//! named activation into such a leaf (`detach().autodiff().require_grad()`) and the network
//! carries on from the leaf: everything downstream is recorded, nothing upstream is. The model
//! itself can stay an inference copy (`model.valid()`: no autodiff, BatchNorm on its running
//! statistics, no dropout); its weights enter the recorded graph as constants.

use burn::prelude::*;

/// Sees the activation of every named layer during a forward pass, in forward order.
pub trait LayerTap {
    /// Called with the activation of layer `name`, `[batch, channels, height, width]`; the
    /// network continues with the returned tensor (same shape).
    fn layer(&mut self, name: &str, activation: Tensor<4>) -> Tensor<4>;

    /// Whether [`LayerTap::layer`] would look at layer `name`. A network may skip the call (and
    /// never build the activation, e.g. by pooling it in the same op) where this is `false`.
    fn sees(&self, _name: &str) -> bool {
        true
    }
}

/// A tap that changes nothing: the plain forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTap;

impl LayerTap for NoTap {
    fn layer(&mut self, _name: &str, activation: Tensor<4>) -> Tensor<4> {
        activation
    }

    fn sees(&self, _name: &str) -> bool {
        false
    }
}

/// Records the name and `[channels, height, width]` of every tapped activation.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// `(name, [channels, height, width])` in forward order.
    pub layers: Vec<(String, [usize; 3])>,
}

impl LayerTap for Recorder {
    fn layer(&mut self, name: &str, activation: Tensor<4>) -> Tensor<4> {
        let [_, c, h, w] = activation.dims();
        self.layers.push((name.to_string(), [c, h, w]));
        activation
    }
}

/// Captures the activation of one layer as a gradient leaf, so that after
/// `score.backward()` the leaf's `grad` is `d score / d activation`.
#[derive(Clone, Debug)]
pub struct Capture {
    name: String,
    leaf: Option<Tensor<4>>,
}

impl Capture {
    /// A capture of layer `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            leaf: None,
        }
    }

    /// The captured activation (an autodiff leaf), if the layer was seen.
    pub fn activation(&self) -> Option<&Tensor<4>> {
        self.leaf.as_ref()
    }
}

impl LayerTap for Capture {
    fn layer(&mut self, name: &str, activation: Tensor<4>) -> Tensor<4> {
        if name != self.name {
            return activation;
        }
        // A fresh leaf: the backward pass stops here and keeps its gradient. Upstream layers
        // need no gradient for Grad-CAM, so cutting the graph also saves their backward.
        let leaf = activation.detach().autodiff().require_grad();
        self.leaf = Some(leaf.clone());
        leaf
    }

    fn sees(&self, name: &str) -> bool {
        name == self.name
    }
}
