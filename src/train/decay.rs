//! Weight decay that spares BatchNorm and bias parameters (`--no-decay-bn-bias true`).
//!
//! burn's optimizers decay every parameter alike, so with this option the optimizer is built
//! without decay and the decay is applied here, before each step, to the parameters of rank 2
//! and more (conv and linear weights) only. Rank-1 parameters (BatchNorm scales and shifts,
//! biases, attention's scalar weights) are left out: the rule of timm's
//! `param_groups_weight_decay`. The arithmetic is the optimizer's own: for Adam, SGD and RMSprop
//! the L2 gradient `g + λ w` (coupled), for AdamW the decoupled `w <- w (1 - lr λ)` before the
//! update.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::config::{OptimizerKind, TrainConfig};
use crate::model::Network;

/// Decay of conv and linear weights only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectiveDecay {
    /// λ.
    penalty: f64,
    /// AdamW's decoupled form, else the L2 gradient.
    decoupled: bool,
}

/// Whether a parameter of rank `rank` is decayed.
pub fn decays(rank: usize) -> bool {
    rank >= 2
}

impl SelectiveDecay {
    /// The selective decay `config` asks for, if any.
    pub fn of(config: &TrainConfig) -> Option<Self> {
        (config.no_decay_bn_bias && config.weight_decay > 0.0).then_some(Self {
            penalty: config.weight_decay,
            decoupled: config.optimizer == OptimizerKind::Adamw,
        })
    }

    /// Applies the decay of one step with learning rate `lr`, before the optimizer's update.
    pub fn apply(
        &self,
        model: Network,
        mut grads: GradientsParams,
        lr: f64,
    ) -> (Network, GradientsParams) {
        if self.decoupled {
            let factor = 1.0 - lr * self.penalty;
            (model.map(&mut Shrink { factor }), grads)
        } else {
            model.visit(&mut AddL2 {
                penalty: self.penalty,
                grads: &mut grads,
            });
            (model, grads)
        }
    }
}

struct AddL2<'a> {
    penalty: f64,
    grads: &'a mut GradientsParams,
}

impl ModuleVisitor for AddL2<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !decays(D) {
            return;
        }
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let w = param.val().without_autodiff();
            self.grads
                .register(param.id, w.mul_scalar(self.penalty) + g);
        }
    }
}

struct Shrink {
    factor: f64,
}

impl ModuleMapper for Shrink {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !decays(D) {
            return param;
        }
        let factor = self.factor;
        param.map(|t| {
            if !t.is_require_grad() {
                return t; // frozen (--finetune head) or a running statistic
            }
            t.without_autodiff()
                .mul_scalar(factor)
                .autodiff()
                .require_grad()
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;

    use super::*;
    use crate::model::ImageClassifier;
    use crate::train::flags;
    use crate::train::optimizer;
    use crate::train::params::tests::tiny_cnn;

    /// Each trained parameter's rank and its ratio after/before one step whose loss gradient is 0.
    fn ratios(optimizer_flags: &[&str]) -> Vec<(usize, f64)> {
        let tokens: Vec<String> = optimizer_flags.iter().map(|s| s.to_string()).collect();
        let config = flags::parse(&tokens).unwrap();
        let device = Device::flex().autodiff();
        let model = tiny_cnn(&device, 8);
        let before = ranked(&model);
        let x = Tensor::<4>::ones([2, 3, 16, 16], &device);
        let loss = model.forward(x).sum().mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = 0.5;
        let (model, grads) = match SelectiveDecay::of(&config) {
            Some(d) => d.apply(model, grads, lr),
            None => (model, grads),
        };
        let mut opt = optimizer::build(&config);
        let after = ranked(&opt.step(lr, model, grads));
        before
            .iter()
            .zip(&after)
            .filter(|((_, b), _)| *b > 0.0) // BatchNorm shifts and biases that start at 0
            .map(|((rank, b), (_, a))| (*rank, a / b))
            .collect()
    }

    /// (rank, sum of squares) of each trained parameter, in module order.
    fn ranked(model: &Network) -> Vec<(usize, f64)> {
        struct V(Vec<(usize, f64)>);
        impl ModuleVisitor for V {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let t = p.val();
                if t.is_require_grad() {
                    let s = t
                        .without_autodiff()
                        .powi_scalar(2)
                        .sum()
                        .into_scalar::<f64>();
                    self.0.push((D, s.sqrt()));
                }
            }
        }
        let mut v = V(Vec::new());
        model.visit(&mut v);
        v.0
    }

    fn check(flags: &[&str], shrink: f64, spared: bool) {
        let r = ratios(flags);
        assert!(r.iter().any(|(rank, _)| *rank == 1) && r.iter().any(|(rank, _)| *rank >= 2));
        for (rank, ratio) in r {
            let expected = if rank < 2 && spared { 1.0 } else { shrink };
            assert!(
                (ratio - expected).abs() < 1e-5,
                "{flags:?}: rank {rank} ratio {ratio}, expected {expected}"
            );
        }
    }

    #[test]
    fn bn_and_bias_parameters_escape_decay_only_when_asked() {
        // SGD without momentum: a zero gradient plus the L2 term scales w by 1 - lr λ.
        let sgd = [
            "--optimizer",
            "sgd",
            "--momentum",
            "0",
            "--weight-decay",
            "0.1",
        ];
        check(&sgd, 1.0 - 0.5 * 0.1, false);
        let mut spared = sgd.to_vec();
        spared.extend(["--no-decay-bn-bias", "true"]);
        check(&spared, 1.0 - 0.5 * 0.1, true);
        // AdamW: a zero gradient leaves only the decoupled decay.
        let adamw = ["--optimizer", "adamw", "--weight-decay", "0.1"];
        check(&adamw, 1.0 - 0.5 * 0.1, false);
        let mut spared = adamw.to_vec();
        spared.extend(["--no-decay-bn-bias", "true"]);
        check(&spared, 1.0 - 0.5 * 0.1, true);
    }
}
