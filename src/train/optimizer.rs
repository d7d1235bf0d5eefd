//! The optimizer a config asks for, as burn's [`ModuleOptimizer`].

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};

use super::config::{OptimizerKind, TrainConfig};

/// PyTorch's default epsilon for Adam, AdamW and RMSprop (burn's default is 1e-5); matching it
/// keeps runs comparable with the PyTorch reference.
const EPSILON: f32 = 1e-8;

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
    let decay = (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new()
            .with_epsilon(EPSILON)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_epsilon(EPSILON)
            .with_weight_decay(weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((config.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(config.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(config.nesterov)
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_momentum(config.momentum as f32)
            .with_epsilon(EPSILON)
            .with_weight_decay(decay)
            .init(),
    }
}
