//! The names of lukemelas' EfficientNet-PyTorch, which the shared EfficientNet-Lite0 weights
//! use.

use super::Layer;
use crate::model::nets::EfficientNetLiteConfig;

/// `_conv_stem`, `_bn0`; per block `_blocks.N._expand_conv`, `_bn0` (absent when the expand
/// ratio is 1), `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`; `_conv_head`, `_bn1`; `_fc`.
pub(super) fn efficientnet_lite(c: &EfficientNetLiteConfig) -> Vec<Layer> {
    let mut layers = vec![
        Layer::conv("_conv_stem", "stem.conv", false),
        Layer::bn("_bn0", "stem.norm"),
    ];
    for (n, expands) in c.block_expands().into_iter().enumerate() {
        let (file, module) = (format!("_blocks.{n}"), format!("blocks.{n}"));
        if expands {
            layers.push(Layer::conv(
                format!("{file}._expand_conv"),
                format!("{module}.expand.conv"),
                false,
            ));
            layers.push(Layer::bn(
                format!("{file}._bn0"),
                format!("{module}.expand.norm"),
            ));
        }
        layers.push(Layer::conv(
            format!("{file}._depthwise_conv"),
            format!("{module}.depthwise.conv"),
            false,
        ));
        layers.push(Layer::bn(
            format!("{file}._bn1"),
            format!("{module}.depthwise.norm"),
        ));
        layers.push(Layer::conv(
            format!("{file}._project_conv"),
            format!("{module}.project.conv"),
            false,
        ));
        layers.push(Layer::bn(
            format!("{file}._bn2"),
            format!("{module}.project.norm"),
        ));
    }
    layers.push(Layer::conv("_conv_head", "head_conv.conv", false));
    layers.push(Layer::bn("_bn1", "head_conv.norm"));
    layers.push(Layer::linear("_fc", "head.fc"));
    layers
}
