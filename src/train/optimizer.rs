//! The optimizer a config asks for, as burn's [`ModuleOptimizer`].

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};

use super::config::{OptimizerKind, TrainConfig};

/// PyTorch's default epsilon for Adam, AdamW and RMSprop (burn's default is 1e-5); matching it
/// keeps runs comparable with the PyTorch reference.
const EPSILON: f32 = 1e-8;

/// Builds the optimizer of `config`. Its learning rate is given per step by the schedule.
pub fn build(config: &TrainConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new()
            .with_epsilon(EPSILON)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_epsilon(EPSILON)
            .with_weight_decay(config.weight_decay as f32)
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
