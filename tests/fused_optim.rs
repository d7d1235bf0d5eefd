//! `train::fused_optim`'s `FusedAdam` and `FusedSgd` (each update one kernel pass per
//! parameter) against burn's `Adam` and `Sgd`: the same weights bit for bit over several steps,
//! with and without weight decay and momentum, and an optimizer state written by either one
//! continues in the other.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use visionnet::train::fused_optim::{FusedAdam, FusedSgd, SgdMomentum};

mod common;
use common::{to_vec, uniform};

/// A conv (rank-4 weight) and a linear layer (rank 2 and 1), large enough that the kernel
/// splits the linear weight into several parallel pieces.
#[derive(Module, Debug)]
struct Small {
    conv: Conv2d,
    linear: Linear,
}

impl Small {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([3, 4], [3, 3]).init(device),
            linear: LinearConfig::new(4 * 6 * 6, 300).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.linear.forward(self.conv.forward(x).flatten(1, 3))
    }
}

/// The optimizers compared: Adam, SGD with (Nesterov) momentum, plain SGD.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Adam,
    Sgd { momentum: Option<(f64, bool)> },
}

/// burn's optimizer of `kind`.
fn burns(kind: Kind, weight_decay: Option<f32>) -> ModuleOptimizer {
    let decay = weight_decay.map(WeightDecayConfig::new);
    match kind {
        Kind::Adam => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init(),
        Kind::Sgd { momentum } => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(momentum.map(|(m, nesterov)| {
                MomentumConfig::new()
                    .with_momentum(m)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            }))
            .init(),
    }
}

/// The fused optimizer of `kind`.
fn fused(kind: Kind, weight_decay: Option<f32>) -> ModuleOptimizer {
    match kind {
        Kind::Adam => ModuleOptimizer::from(FusedAdam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay,
        }),
        Kind::Sgd { momentum } => ModuleOptimizer::from(FusedSgd {
            weight_decay,
            momentum: momentum.map(|(m, nesterov)| SgdMomentum {
                momentum: m as f32,
                gradient_factor: 1.0,
                nesterov,
            }),
        }),
    }
}

const KINDS: [Kind; 4] = [
    Kind::Adam,
    Kind::Sgd {
        momentum: Some((0.9, true)),
    },
    Kind::Sgd {
        momentum: Some((0.9, false)),
    },
    Kind::Sgd { momentum: None },
];

/// Every parameter's values, in the module's order.
fn weights(model: &Small) -> Vec<f32> {
    let mut out = Vec::new();
    for t in [
        model.conv.weight.val().flatten::<1>(0, 3),
        model.conv.bias.as_ref().unwrap().val(),
        model.linear.weight.val().flatten::<1>(0, 1),
        model.linear.bias.as_ref().unwrap().val(),
    ] {
        out.extend(to_vec(t));
    }
    out
}

/// `steps` steps of a squared loss on fresh random batches, step `i` at rate `1e-3 (1 + i/4)`
/// (the schedule's rate reaches the kernel each step).
fn train(mut model: Small, optim: &mut ModuleOptimizer, first: usize, steps: usize) -> Small {
    let device = model.devices()[0].clone();
    for i in first..first + steps {
        let x = Tensor::<4>::from_data(
            TensorData::new(uniform(5 * 3 * 8 * 8, 100 + i as u64), [5, 3, 8, 8]),
            &device,
        );
        let t = Tensor::<2>::from_data(
            TensorData::new(uniform(5 * 300, 200 + i as u64), [5, 300]),
            &device,
        );
        let loss = (model.forward(x) - t).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3 * (1.0 + i as f64 / 4.0), model, grads);
    }
    model
}

#[test]
fn fused_optimizers_give_burns_weights_bit_for_bit() {
    let device = Device::flex().autodiff();
    for kind in KINDS {
        for decay in [None, Some(5e-4)] {
            let start = Small::new(&device);
            let want = weights(&train(start.clone(), &mut burns(kind, decay), 0, 5));
            let got = weights(&train(start.clone(), &mut fused(kind, decay), 0, 5));
            assert_ne!(
                weights(&start),
                want,
                "{kind:?}: the steps moved the weights"
            );
            assert_eq!(
                got, want,
                "{kind:?}: weights after 5 steps, decay {decay:?}"
            );
        }
    }
}

#[test]
fn an_optimizer_state_of_either_continues_in_the_other() {
    let device = Device::flex().autodiff();
    for kind in KINDS {
        let start = Small::new(&device);
        let mut reference = burns(kind, Some(5e-4));
        let after_3 = train(start.clone(), &mut reference, 0, 3);
        let want = weights(&train(after_3, &mut reference, 3, 2));

        // burn's state (as a checkpoint writes it) loaded into the fused optimizer, and back
        let mut first = burns(kind, Some(5e-4));
        let model = train(start.clone(), &mut first, 0, 3);
        let mut second = fused(kind, Some(5e-4))
            .from_bytes(first.into_bytes().unwrap())
            .unwrap();
        let got = weights(&train(model, &mut second, 3, 2));
        assert_eq!(
            got, want,
            "{kind:?}: burn's state continued by the fused optimizer"
        );

        let mut first = fused(kind, Some(5e-4));
        let model = train(start, &mut first, 0, 3);
        let mut second = burns(kind, Some(5e-4))
            .from_bytes(first.into_bytes().unwrap())
            .unwrap();
        let got = weights(&train(model, &mut second, 3, 2));
        assert_eq!(
            got, want,
            "{kind:?}: the fused optimizer's state continued by burn's"
        );
    }
}
