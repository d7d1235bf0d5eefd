//! The standard attention modules a CNN researcher reaches for first, as references for the
//! study's three architectures (`--channel-attn se|eca|cbam|gc`): each after every conv, where
//! the study's attention goes, following timm's definitions (`timm/layers/squeeze_excite.py`,
//! `eca.py`, `cbam.py`, `global_context.py`, timm 1.0) with timm's defaults:
//!
//! - **SE** (`SEModule`): global average pool -> 1x1 conv `C -> r` (bias) -> ReLU -> 1x1 conv
//!   `r -> C` (bias) -> sigmoid gate on `x`; `r = make_divisible(C / 16, 8)`.
//! - **ECA** (`EcaModule`): global average pool -> 1-D conv across the channels (no bias,
//!   kernel `k` from the channel count as in the ECA paper: `t = int(|log2 C + 1| / 2)`, the
//!   odd `k` at or above `t`, at least 3) -> sigmoid gate.
//! - **CBAM** (`CbamModule`): channel attention (average- and max-pooled vectors through one
//!   shared MLP `C -> r -> C`, no bias, ReLU; summed; sigmoid gate; `r = make_divisible(C / 16,
//!   1)`), then spatial attention (channel mean and max -> 7x7 conv `2 -> 1`, no bias ->
//!   BatchNorm -> sigmoid gate).
//! - **GC** (`GlobalContext`, `fuse_scale`): a 1x1 conv `C -> 1` (bias) scores every pixel,
//!   softmax over the pixels pools a context vector, MLP `C -> r` (bias) -> LayerNorm (eps
//!   1e-6) -> ReLU -> `r -> C` (bias), sigmoid gate on `x`; `r = make_divisible(C / 8, 1)`.
//!
//! The 1x1 convs act on pooled `[batch, C, 1, 1]` vectors, so they are linear layers here
//! (burn's `Linear` stores `[in, out]`, the transpose of PyTorch's `[out, in, 1, 1]`). Each
//! module keeps the channel count, so it combines with every other option. [`ChannelAttnKind::
//! config`] is the one factory (timm's `create_attn`).

use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d,
    PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};

use crate::model::{cost, ops};

/// Which standard attention module follows every conv (`--channel-attn`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelAttnKind {
    /// Squeeze-and-excitation (Hu et al. 2018).
    Se,
    /// Efficient channel attention (Wang et al. 2020).
    Eca,
    /// Convolutional block attention module: channel, then spatial (Woo et al. 2018).
    Cbam,
    /// Global context block (Cao et al. 2019).
    Gc,
}

/// timm's `make_divisible(v, divisor, round_limit=0.)`: `v` rounded to the nearest multiple of
/// `divisor` (halves up), at least `divisor`.
fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    (((v + d / 2.0) / d).floor() as usize * divisor).max(divisor)
}

/// ECA's kernel size for `channels` (timm's `EcaModule` with gamma 2, beta 1).
pub fn eca_kernel(channels: usize) -> usize {
    let t = (((channels as f64).log2() + 1.0).abs() / 2.0) as usize;
    (if t % 2 == 1 { t } else { t + 1 }).max(3)
}

impl ChannelAttnKind {
    /// The module's configuration for `channels` channels: timm's `create_attn`.
    pub fn config(self, channels: usize) -> ChannelAttnConfig {
        ChannelAttnConfig::new(self, channels)
    }
}

/// Configuration of a [`ChannelAttn`] module.
#[derive(Config, Debug)]
pub struct ChannelAttnConfig {
    /// Which module.
    pub kind: ChannelAttnKind,
    /// Channels of its input and output.
    pub channels: usize,
}

impl ChannelAttnConfig {
    /// Hidden width of the module's MLP (0 for ECA, which has none).
    pub fn reduced(&self) -> usize {
        let c = self.channels as f64;
        match self.kind {
            ChannelAttnKind::Se => make_divisible(c / 16.0, 8),
            ChannelAttnKind::Cbam => make_divisible(c / 16.0, 1),
            ChannelAttnKind::Gc => make_divisible(c / 8.0, 1),
            ChannelAttnKind::Eca => 0,
        }
    }

    /// Builds the module on `device`.
    pub fn init(&self, device: &Device) -> ChannelAttn {
        let (c, r) = (self.channels, self.reduced());
        let linear = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).init(device);
        match self.kind {
            ChannelAttnKind::Se => ChannelAttn::Se(SqueezeExcite {
                fc1: linear(c, r, true),
                fc2: linear(r, c, true),
            }),
            ChannelAttnKind::Eca => {
                let k = eca_kernel(c);
                ChannelAttn::Eca(Eca {
                    conv: Conv1dConfig::new(1, 1, k)
                        .with_padding(PaddingConfig1d::Explicit((k - 1) / 2, (k - 1) / 2))
                        .with_bias(false)
                        .init(device),
                })
            }
            ChannelAttnKind::Cbam => ChannelAttn::Cbam(Cbam {
                fc1: linear(c, r, false),
                fc2: linear(r, c, false),
                spatial: Conv2dConfig::new([2, 1], [7, 7])
                    .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                    .with_bias(false)
                    .init(device),
                norm: BatchNormConfig::new(1).init(device),
            }),
            ChannelAttnKind::Gc => ChannelAttn::Gc(GlobalContext {
                attn: linear(c, 1, true),
                fc1: linear(c, r, true),
                norm: LayerNormConfig::new(r).with_epsilon(1e-6).init(device),
                fc2: linear(r, c, true),
            }),
        }
    }

    /// Forward FLOPs for an input of `[C, h, w]` (multiply-add = 2; pooling, gating and the
    /// softmax count one per value).
    pub fn flops(&self, [c, h, w]: [usize; 3]) -> u64 {
        let (r, n) = (self.reduced(), (h * w) as u64);
        let values = c as u64 * n;
        let mlp = cost::linear_flops(c, r) + cost::linear_flops(r, c);
        match self.kind {
            // pool + MLP + gate
            ChannelAttnKind::Se => values + mlp + values,
            ChannelAttnKind::Eca => values + 2 * (eca_kernel(c) * c) as u64 + values,
            // two pools + MLP twice + gate; channel mean and max + 7x7 conv + BatchNorm + gate
            ChannelAttnKind::Cbam => {
                2 * values
                    + 2 * mlp
                    + values
                    + 2 * values
                    + cost::conv2d_flops(2, 1, [7, 7], 1, [h, w])
                    + 2 * n
                    + values
            }
            // scores + softmax + weighted pool + MLP (LayerNorm on r) + gate
            ChannelAttnKind::Gc => 2 * values + 3 * n + 2 * values + mlp + 5 * r as u64 + values,
        }
    }
}

/// A standard attention module after a conv: the output keeps the input's shape.
///
/// # Shapes
/// - input: `[batch, C, h, w]`
/// - output: `[batch, C, h, w]`
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a layer choice, built once per network: boxing saves nothing that matters
pub enum ChannelAttn {
    /// Squeeze-and-excitation.
    Se(SqueezeExcite),
    /// Efficient channel attention.
    Eca(Eca),
    /// CBAM.
    Cbam(Cbam),
    /// Global context.
    Gc(GlobalContext),
}

impl ChannelAttn {
    /// Gates `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ChannelAttn::Se(m) => m.forward(x),
            ChannelAttn::Eca(m) => m.forward(x),
            ChannelAttn::Cbam(m) => m.forward(x),
            ChannelAttn::Gc(m) => m.forward(x),
        }
    }
}

/// `[b, c, h, w] -> [b, c]`: the mean of every map.
fn avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}

/// `x * gate`, `gate` of `[b, c]` broadcast over the pixels.
fn scale_channels(x: Tensor<4>, gate: Tensor<2>) -> Tensor<4> {
    let [b, c] = gate.dims();
    x * gate.reshape([b, c, 1, 1])
}

/// Squeeze-and-excitation (timm `SEModule`).
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// `C -> r`, with bias (timm `fc1`).
    pub fc1: Linear,
    /// `r -> C`, with bias (timm `fc2`).
    pub fc2: Linear,
}

impl SqueezeExcite {
    /// `x * sigmoid(fc2(relu(fc1(mean(x)))))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = self
            .fc2
            .forward(relu(self.fc1.forward(avg_pool(x.clone())))); // [b, c]
        scale_channels(x, sigmoid(s))
    }
}

/// Efficient channel attention (timm `EcaModule`).
#[derive(Module, Debug)]
pub struct Eca {
    /// The 1-D conv across channels, `1 -> 1`, kernel `k`, no bias.
    pub conv: Conv1d,
}

impl Eca {
    /// `x * sigmoid(conv1d(mean(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, _, _] = x.dims();
        let y = self.conv.forward(avg_pool(x.clone()).reshape([b, 1, c])); // [b, 1, c]
        scale_channels(x, sigmoid(y.reshape([b, c])))
    }
}

/// CBAM (timm `CbamModule`): channel attention, then spatial attention.
#[derive(Module, Debug)]
pub struct Cbam {
    /// Channel MLP `C -> r`, no bias (timm `channel.fc1`).
    pub fc1: Linear,
    /// `r -> C`, no bias (timm `channel.fc2`).
    pub fc2: Linear,
    /// 7x7 conv `2 -> 1`, no bias (timm `spatial.conv.conv`).
    pub spatial: Conv2d,
    /// Its BatchNorm (timm `spatial.conv.bn`).
    pub norm: BatchNorm,
}

impl Cbam {
    /// Channel gate from the mean- and max-pooled maps, then the spatial gate.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let mlp = |v: Tensor<2>| self.fc2.forward(relu(self.fc1.forward(v)));
        let max = x.clone().reshape([b, c, h * w]).max_dim(2).reshape([b, c]);
        let gate = sigmoid(mlp(avg_pool(x.clone())) + mlp(max)); // [b, c]
        let x = scale_channels(x, gate);
        let pooled = Tensor::cat(vec![x.clone().mean_dim(1), x.clone().max_dim(1)], 1); // [b, 2, h, w]
        let score = ops::batch_norm::forward(&self.norm, ops::conv::forward(&self.spatial, pooled)); // [b, 1, h, w]
        x * sigmoid(score)
    }
}

/// Global context block (timm `GlobalContext` with `fuse_scale`).
#[derive(Module, Debug)]
pub struct GlobalContext {
    /// Pixel scores, `C -> 1` with bias (timm `conv_attn`).
    pub attn: Linear,
    /// `C -> r`, with bias (timm `mlp_scale.fc1`).
    pub fc1: Linear,
    /// LayerNorm over the `r` channels (timm `mlp_scale.norm`).
    pub norm: LayerNorm,
    /// `r -> C`, with bias (timm `mlp_scale.fc2`).
    pub fc2: Linear,
}

impl GlobalContext {
    /// Softmax-pooled context through the MLP, as a sigmoid gate on `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let pixels = x.clone().reshape([b, c, h * w]); // [b, c, n]
        let scores = self.attn.forward(pixels.clone().swap_dims(1, 2)); // [b, n, 1]
        let weights = softmax(scores, 1); // [b, n, 1], sums to 1 over the pixels
        let context = pixels.matmul(weights).reshape([b, c]); // [b, c]
        let y = self
            .fc2
            .forward(relu(self.norm.forward(self.fc1.forward(context)))); // [b, c]
        scale_channels(x, sigmoid(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_widths_and_kernels_follow_timm() {
        // make_divisible(32 / 16, 8) = 8; (256 / 16, 8) = 16; CBAM's divisor 1: 2 and 16;
        // GC's C / 8: 4 and 32.
        let r = |k, c| ChannelAttnKind::config(k, c).reduced();
        assert_eq!(
            (r(ChannelAttnKind::Se, 32), r(ChannelAttnKind::Se, 256)),
            (8, 16)
        );
        assert_eq!(
            (r(ChannelAttnKind::Cbam, 32), r(ChannelAttnKind::Cbam, 256)),
            (2, 16)
        );
        assert_eq!(
            (r(ChannelAttnKind::Gc, 32), r(ChannelAttnKind::Gc, 256)),
            (4, 32)
        );
        // ECA: t = int((log2 C + 1) / 2): C = 32 -> 3; 64 -> 3 (t 3); 128 -> 5 (t 4); 256 -> 5 (t 4).
        assert_eq!([32, 64, 128, 256].map(eca_kernel), [3, 3, 5, 5]);
        assert_eq!(eca_kernel(8), 3);
    }
}
