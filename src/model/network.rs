//! [`NetworkConfig`] and [`Network`]: any family's configuration and network, one variant per
//! family, each forwarding the [`family`](super::family) contract to the family it holds.

use burn::prelude::*;

use super::family::{ClassifierHead, ImageClassifier, ImageClassifierConfig};
use super::nets::{
    Cnn, CnnConfig, EfficientNetLite, EfficientNetLiteConfig, ResNet, ResNetConfig, Vgg, VggConfig,
    Xception, XceptionConfig,
};
use super::tap::{LayerTap, Recorder};
use crate::error::{Error, Result};

/// Declares [`NetworkConfig`] and [`Network`] from the family list below, and implements the
/// family traits on them by forwarding every call to the family a value holds: the one place a
/// family is listed, so adding one is one line in the invocation.
macro_rules! families {
    ($($(#[$doc:meta])* $family:ident($config:ident => $network:ident),)+) => {
        /// The configuration of any registered network.
        #[derive(Clone, Debug)]
        pub enum NetworkConfig {
            $($(#[$doc])* $family($config),)+
        }

        /// Any registered network. Every network splits into a backbone (`forward_features`)
        /// and a classifier head (`forward_head`); the head splits again into a parameter-free
        /// pooling (`pool_features`) and the trainable classifier (`classify`), so pooled
        /// features can be computed once and cached for a linear probe.
        #[derive(Module, Debug)]
        // A layer choice, built once per network: boxing the large variants saves nothing.
        #[allow(clippy::large_enum_variant)]
        pub enum Network {
            $($(#[$doc])* $family($network),)+
        }

        $(impl From<$config> for NetworkConfig {
            fn from(config: $config) -> Self {
                Self::$family(config)
            }
        })+

        impl ImageClassifierConfig for NetworkConfig {
            type Network = Network;

            fn validate(&self) -> Result<()> {
                match self { $(Self::$family(c) => c.validate(),)+ }
            }

            fn init(&self, device: &Device) -> Result<Network> {
                match self { $(Self::$family(c) => c.init(device).map(Network::$family),)+ }
            }

            fn flops(&self) -> u64 {
                match self { $(Self::$family(c) => c.flops(),)+ }
            }

            fn feature_shape(&self) -> [usize; 3] {
                match self { $(Self::$family(c) => c.feature_shape(),)+ }
            }

            fn layer_names(&self) -> Vec<String> {
                match self { $(Self::$family(c) => c.layer_names(),)+ }
            }

            fn cam_layer(&self) -> String {
                match self { $(Self::$family(c) => c.cam_layer(),)+ }
            }

            fn naive_attention_elements(&self, batch: usize) -> u64 {
                match self { $(Self::$family(c) => c.naive_attention_elements(batch),)+ }
            }
        }

        /// A [`Network`] is its own head: pooling and classifying go to its family's head.
        impl ClassifierHead for Network {
            fn pool_features(&self, features: Tensor<4>) -> Tensor<2> {
                match self { $(Self::$family(m) => m.pool_features(features),)+ }
            }

            fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
                match self { $(Self::$family(m) => m.classify(pooled),)+ }
            }
        }

        impl ImageClassifier for Network {
            type Head = Self;

            fn forward_features_tapped(
                &self,
                images: Tensor<4>,
                tap: &mut dyn LayerTap,
            ) -> Tensor<4> {
                match self { $(Self::$family(m) => m.forward_features_tapped(images, tap),)+ }
            }

            fn head(&self) -> &Self {
                self
            }

            fn freeze_backbone(self) -> Self {
                match self { $(Self::$family(m) => Self::$family(m.freeze_backbone()),)+ }
            }
        }
    };
}

families! {
    /// The study's CNN.
    Cnn(CnnConfig => Cnn),
    /// VGG-16, with or without BatchNorm.
    Vgg(VggConfig => Vgg),
    /// ResNet-50.
    ResNet(ResNetConfig => ResNet),
    /// Xception.
    Xception(XceptionConfig => Xception),
    /// EfficientNet-Lite0.
    EfficientNetLite(EfficientNetLiteConfig => EfficientNetLite),
}

impl NetworkConfig {
    /// Refuses naive attention (`--attn-impl naive`) whose pixel x pixel matrices alone could
    /// take more than half the memory the system has available, counting `copies` `f32` copies
    /// of each (about 4 are alive around the softmax in a training step, 2 in inference), so
    /// that `model` at `batch` images per step (set by `flag`) ends with a message instead of
    /// the out-of-memory killer. Passes when the available memory is unknown.
    pub fn check_naive_attention_memory(
        &self,
        model: &str,
        batch: usize,
        copies: u64,
        flag: &str,
    ) -> Result<()> {
        let bytes = copies * 4 * self.naive_attention_elements(batch);
        match crate::device::available_memory() {
            Some(available) if bytes > available / 2 => Err(Error::invalid(
                flag,
                format!(
                    "naive {model} at {batch} images per step may hold {:.1} GiB of attention matrices, more than \
                     half the {:.1} GiB available: use a smaller batch or --attn-impl lean",
                    bytes as f64 / GIB,
                    available as f64 / GIB
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that `name` is one of [`layer_names`](ImageClassifierConfig::layer_names); the
    /// error lists them.
    pub fn check_layer(&self, model: &str, name: &str) -> Result<()> {
        let names = self.layer_names();
        if names.iter().any(|n| n == name) {
            return Ok(());
        }
        Err(Error::invalid(
            "--layer",
            format!(
                "model '{model}' has no layer '{name}'; its layers: {}",
                names.join(", ")
            ),
        ))
    }

    /// Each tappable layer with the `[channels, height, width]` of its activation for one
    /// input image, in forward order (a forward pass of a zero image on `device`).
    pub fn layer_shapes(
        &self,
        input: [usize; 3],
        device: &Device,
    ) -> Result<Vec<(String, [usize; 3])>> {
        let model = self.init(device)?.valid();
        let [c, h, w] = input;
        let mut recorder = Recorder::default();
        model.forward_tapped(Tensor::zeros([1, c, h, w], device), &mut recorder);
        Ok(recorder.layers)
    }
}

const GIB: f64 = (1u64 << 30) as f64;
