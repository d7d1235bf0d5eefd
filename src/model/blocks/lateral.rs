//! Lateral connections (`--lateral`) within a stage of the study's CNN: how the conv units of a
//! stage pass their inputs on, beyond the plain chain.
//!
//! - `none`: `x -> f1 -> f2 -> ...`, the study's plain CNN.
//! - `residual` (ResNet): each unit's input is added to its output, `y = f(x) + s(x)`, where `s`
//!   is the identity when the widths agree and a 1x1 conv + BatchNorm projection otherwise (He
//!   et al.'s option B). Nothing follows the addition, so identities pass through the stage
//!   unchanged (He et al., "Identity mappings in deep residual networks").
//! - `dense` (DenseNet): unit `j` sees the concatenation of the stage's input and every earlier
//!   unit's output, `x_j = f_j([x_0, x_1, ..., x_{j-1}])`; the concatenation of all of them is
//!   compressed back to the stage width by a 1x1 conv + BatchNorm + ReLU transition (Huang et
//!   al.'s transition layer, whose pooling is the stage's own).
//!
//! The units themselves (conv, BatchNorm, activation, attention, ...) are the caller's: a
//! [`Lateral`] holds only the connection's own weights and is given the units as a function, so
//! it composes with any unit.

use burn::prelude::*;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::conv_bn::{Activation, ConvBn, ConvBnConfig};

/// How the units of a stage are connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LateralKind {
    /// A plain chain.
    #[default]
    None,
    /// Identity or 1x1-projection shortcut around every unit.
    Residual,
    /// Every unit sees all earlier feature maps of its stage.
    Dense,
}

/// Configuration of a stage's [`Lateral`] connections.
#[derive(Config, Debug)]
pub struct LateralConfig {
    /// The connection.
    pub kind: LateralKind,
    /// Channels into the stage.
    pub c_in: usize,
    /// Channels of every unit's output and of the stage's output.
    pub width: usize,
    /// Units in the stage.
    pub depth: usize,
}

/// The connection weights of one stage: projection shortcuts (residual) or the transition
/// (dense).
///
/// # Shapes
/// - input: `[batch, c_in, h, w]`
/// - output: `[batch, width, h, w]`
#[derive(Module, Debug)]
pub struct Lateral {
    /// Residual: per unit, a projection, or `None` for the identity.
    shortcuts: Vec<Option<ConvBn>>,
    /// Dense: the 1x1 transition back to the stage width.
    transition: Option<ConvBn>,
    #[module(skip)]
    kind: LateralKind,
}

impl LateralConfig {
    /// Input channels of each unit.
    pub fn unit_inputs(&self) -> Vec<usize> {
        (0..self.depth)
            .map(|j| match self.kind {
                LateralKind::Dense => self.c_in + j * self.width,
                _ if j == 0 => self.c_in,
                _ => self.width,
            })
            .collect()
    }

    fn shortcut(&self, c_in: usize) -> Option<ConvBnConfig> {
        (c_in != self.width).then(|| {
            ConvBnConfig::symmetric(c_in, self.width, 1, 1).with_activation(Activation::Identity)
        })
    }

    fn transition(&self) -> ConvBnConfig {
        ConvBnConfig::symmetric(self.c_in + self.depth * self.width, self.width, 1, 1)
    }

    /// Builds the connection on `device`.
    pub fn init(&self, device: &Device) -> Lateral {
        let (shortcuts, transition) = match self.kind {
            LateralKind::None => (Vec::new(), None),
            LateralKind::Residual => (
                self.unit_inputs()
                    .into_iter()
                    .map(|c| self.shortcut(c).map(|s| s.init(device)))
                    .collect(),
                None,
            ),
            LateralKind::Dense => (Vec::new(), Some(self.transition().init(device))),
        };
        Lateral {
            shortcuts,
            transition,
            kind: self.kind,
        }
    }

    /// Forward FLOPs of the connection's own convs on an `[h, w]` map.
    pub fn flops(&self, hw: [usize; 2]) -> u64 {
        match self.kind {
            LateralKind::None => 0,
            LateralKind::Residual => self
                .unit_inputs()
                .into_iter()
                .filter_map(|c| self.shortcut(c))
                .map(|s| s.flops(hw))
                .sum(),
            LateralKind::Dense => self.transition().flops(hw),
        }
    }
}

impl Lateral {
    /// Runs the stage: `unit(j, x)` applies unit `j` (which must keep the spatial size).
    pub fn forward(
        &self,
        x: Tensor<4>,
        depth: usize,
        unit: impl Fn(usize, Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        match self.kind {
            LateralKind::None => (0..depth).fold(x, |x, j| unit(j, x)),
            LateralKind::Residual => (0..depth).fold(x, |x, j| {
                let shortcut = match &self.shortcuts[j] {
                    Some(projection) => projection.forward(x.clone()), // [batch, width, h, w]
                    None => x.clone(),
                };
                unit(j, x) + shortcut // [batch, width, h, w]
            }),
            LateralKind::Dense => {
                let mut maps = vec![x]; // [batch, c_in, h, w], then [batch, width, h, w] each
                for j in 0..depth {
                    let input = Tensor::cat(maps.clone(), 1); // [batch, c_in + j * width, h, w]
                    maps.push(unit(j, input));
                }
                let all = Tensor::cat(maps, 1); // [batch, c_in + depth * width, h, w]
                self.transition
                    .as_ref()
                    .expect("a dense stage has a transition")
                    .forward(all) // [batch, width, h, w]
            }
        }
    }

    /// Runs the stage followed by its 2x2 pool. A plain chain's last unit runs as `pooled(j,
    /// x)`, which pools its own output (its BatchNorm -> ReLU -> pool as one op); the other
    /// connections add or concatenate after their units, so their output goes through `pool`.
    ///
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]`; output: `[batch, width, h/2, w/2]`
    pub fn forward_pooled(
        &self,
        x: Tensor<4>,
        depth: usize,
        unit: impl Fn(usize, Tensor<4>) -> Tensor<4>,
        pooled: impl FnOnce(usize, Tensor<4>) -> Tensor<4>,
        pool: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        match self.kind {
            LateralKind::None => {
                let last = depth - 1;
                let x = (0..last).fold(x, |x, j| unit(j, x)); // [batch, width, h, w]
                pooled(last, x) // [batch, width, h/2, w/2]
            }
            LateralKind::Residual | LateralKind::Dense => pool(self.forward(x, depth, unit)),
        }
    }
}
