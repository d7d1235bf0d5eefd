//! torchvision's parameter names for VGG and ResNet.

use super::Layer;
use crate::model::nets::{ResNetConfig, VggConfig};

/// `vgg16` / `vgg16_bn`: `features` is one `nn.Sequential` of conv, [BatchNorm,] ReLU per conv
/// and a max-pool per stage, so the conv of a layer sits at a running index (0, 2, 5, 7, ...
/// without BatchNorm; 0, 3, 7, 10, ... with it); `classifier` is Linear, ReLU, Dropout, Linear,
/// ReLU, Dropout, Linear (indices 0, 3, 6).
pub(super) fn vgg(c: &VggConfig) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut index = 0;
    for (s, &depth) in c.depths.iter().enumerate() {
        for i in 0..depth {
            let module = format!("stages.{s}.{i}");
            layers.push(Layer::conv(
                format!("features.{index}"),
                format!("{module}.conv"),
                true,
            ));
            if c.batch_norm {
                layers.push(Layer::bn(
                    format!("features.{}", index + 1),
                    format!("{module}.norm"),
                ));
                index += 3;
            } else {
                index += 2;
            }
        }
        index += 1; // max-pool
    }
    for (i, fc) in [(0, "fc1"), (3, "fc2"), (6, "fc3")] {
        layers.push(Layer::linear(
            format!("classifier.{i}"),
            format!("head.{fc}"),
        ));
    }
    layers
}

/// `resnet50`: `conv1`, `bn1`, `layer{1-4}.{block}.{conv,bn}{1-3}`, `downsample.0` (conv) and
/// `downsample.1` (BatchNorm), `fc`.
pub(super) fn resnet(c: &ResNetConfig) -> Vec<Layer> {
    let mut layers = vec![
        Layer::conv("conv1", "stem.conv", false),
        Layer::bn("bn1", "stem.norm"),
    ];
    let mut c_in = c.stem_width;
    for (s, (&width, &depth)) in c.widths.iter().zip(&c.depths).enumerate() {
        for b in 0..depth {
            let (file, module) = (format!("layer{}.{b}", s + 1), format!("stages.{s}.{b}"));
            for k in 1..=3 {
                layers.push(Layer::conv(
                    format!("{file}.conv{k}"),
                    format!("{module}.conv{k}.conv"),
                    false,
                ));
                layers.push(Layer::bn(
                    format!("{file}.bn{k}"),
                    format!("{module}.conv{k}.norm"),
                ));
            }
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            if stride != 1 || c_in != width * 4 {
                layers.push(Layer::conv(
                    format!("{file}.downsample.0"),
                    format!("{module}.downsample.conv"),
                    false,
                ));
                layers.push(Layer::bn(
                    format!("{file}.downsample.1"),
                    format!("{module}.downsample.norm"),
                ));
            }
            c_in = width * 4;
        }
    }
    layers.push(Layer::linear("fc", "head.fc"));
    layers
}
