//! timm's parameter names for Xception (`legacy_xception`, also registered as `xception`).

use super::Layer;
use crate::model::nets::XceptionConfig;

/// A timm `SeparableConv2d` (`conv1` is the depthwise conv, `pointwise` the 1x1) followed by
/// its BatchNorm.
fn separable_bn(layers: &mut Vec<Layer>, file_conv: &str, file_bn: &str, module: &str) {
    layers.push(Layer::conv(
        format!("{file_conv}.conv1"),
        format!("{module}.conv.depthwise"),
        false,
    ));
    layers.push(Layer::conv(
        format!("{file_conv}.pointwise"),
        format!("{module}.conv.pointwise"),
        false,
    ));
    layers.push(Layer::bn(file_bn, format!("{module}.norm")));
}

/// `conv1`, `bn1`, `conv2`, `bn2`; `block{1-12}.rep.N` is an `nn.Sequential` of [ReLU,]
/// SeparableConv2d, BatchNorm per rep (the first block starts without ReLU, so its separable
/// convs sit at 0, 3 and the others' at 1, 4, 7), then `skip` and `skipbn`; `conv3`, `bn3`,
/// `conv4`, `bn4`; `fc`.
pub(super) fn xception(c: &XceptionConfig) -> Vec<Layer> {
    let mut layers = vec![
        Layer::conv("conv1", "conv1.conv", false),
        Layer::bn("bn1", "conv1.norm"),
        Layer::conv("conv2", "conv2.conv", false),
        Layer::bn("bn2", "conv2.norm"),
    ];
    let w = &c.widths;
    let mut specs = vec![
        (w[1], w[2], 2, 2, false),
        (w[2], w[3], 2, 2, true),
        (w[3], w[4], 2, 2, true),
    ];
    let mut c_mid = w[4];
    for _ in 0..c.middle_blocks {
        specs.push((c_mid, w[5], 3, 1, true));
        c_mid = w[5];
    }
    specs.push((c_mid, w[6], 2, 2, true));
    for (n, (c_in, c_out, reps, stride, start_with_relu)) in specs.into_iter().enumerate() {
        let (file, module) = (format!("block{}", n + 1), format!("blocks.{n}"));
        let offset = usize::from(start_with_relu);
        for r in 0..reps {
            let at = offset + 3 * r;
            separable_bn(
                &mut layers,
                &format!("{file}.rep.{at}"),
                &format!("{file}.rep.{}", at + 1),
                &format!("{module}.reps.{r}"),
            );
        }
        if c_in != c_out || stride != 1 {
            layers.push(Layer::conv(
                format!("{file}.skip"),
                format!("{module}.skip.conv"),
                false,
            ));
            layers.push(Layer::bn(
                format!("{file}.skipbn"),
                format!("{module}.skip.norm"),
            ));
        }
    }
    separable_bn(&mut layers, "conv3", "bn3", "conv3");
    separable_bn(&mut layers, "conv4", "bn4", "conv4");
    layers.push(Layer::linear("fc", "head.fc"));
    layers
}
