//! The optimizer a config asks for, as burn's [`ModuleOptimizer`]. Adam and SGD are
//! [`FusedAdam`] and [`FusedSgd`] (burn's updates, bit for bit, in one pass per parameter);
//! AdamW and RMSprop are burn's.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, RmsPropConfig};

use super::config::{OptimizerKind, TrainConfig};
use super::fused_optim::{FusedAdam, FusedSgd, SgdMomentum};

/// PyTorch's default epsilon for Adam, AdamW and RMSprop (burn's default is 1e-5); matching it
/// keeps runs comparable with the PyTorch reference.
const EPSILON: f32 = 1e-8;

/// Adam's decay of the first and second moments: the defaults of burn's `AdamConfig` and of
/// PyTorch.
pub const ADAM_BETAS: (f32, f32) = (0.9, 0.999);

/// Adam with PyTorch's epsilon and moment decays and the L2 penalty `weight_decay`: what
/// `--optimizer adam` trains with, and what `visionnet bench` times.
pub fn adam(weight_decay: Option<f32>) -> ModuleOptimizer {
    ModuleOptimizer::from(FusedAdam {
        beta_1: ADAM_BETAS.0,
        beta_2: ADAM_BETAS.1,
        epsilon: EPSILON,
        weight_decay,
    })
}

/// Builds the optimizer of `config`. Its learning rate is given per step by the schedule.
/// With `--no-decay-bn-bias` it has no weight decay of its own: [`SelectiveDecay`] applies it.
///
/// [`SelectiveDecay`]: super::decay::SelectiveDecay
pub fn build(config: &TrainConfig) -> ModuleOptimizer {
    let weight_decay = if super::decay::SelectiveDecay::of(config).is_some() {
        0.0
    } else {
        config.weight_decay
    };
    let penalty = (weight_decay > 0.0).then_some(weight_decay as f32);
    match config.optimizer {
        OptimizerKind::Adam => adam(penalty),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_epsilon(EPSILON)
            .with_weight_decay(weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => ModuleOptimizer::from(FusedSgd {
            weight_decay: penalty,
            // no dampening, as PyTorch's default
            momentum: (config.momentum > 0.0).then_some(SgdMomentum {
                momentum: config.momentum as f32,
                gradient_factor: 1.0,
                nesterov: config.nesterov,
            }),
        }),
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_momentum(config.momentum as f32)
            .with_epsilon(EPSILON)
            .with_weight_decay(penalty.map(WeightDecayConfig::new))
            .init(),
    }
}
