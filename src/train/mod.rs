//! Training: configuration, optimizers and schedules, the loop, metrics sinks (CSV,
//! TensorBoard), checkpoints and resume, run manifests, evaluation, and experiment grids (many
//! runs from one grid file).

pub mod checkpoint;
pub mod config;
pub mod decay;
pub mod ema;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod features;
pub mod flags;
pub mod fused_optim;
pub mod interrupt;
pub mod lookahead;
pub mod manifest;
pub mod metrics;
pub mod optimizer;
pub mod params;
pub mod progress;
pub mod recipe;
pub mod run_lock;
pub mod schedule;
pub mod tensorboard;
pub mod trainer;

pub use config::{Finetune, OptimizerKind, ScheduleKind, TrainConfig};
pub use trainer::{RunEnd, RunOptions, TrainOutcome, resume, train};
