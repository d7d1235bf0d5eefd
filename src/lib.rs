//! visionnet: the influence of brain-inspired features on CNNs for image classification.
//!
//! Layers, each importing only those to its left:
//! `data -> model -> train -> report / bench -> cli`.
//!
//! - [`data`]: CIFAR binaries and image folders, splits, augmentation, batches.
//! - [`model`]: building blocks, the study's networks, the model table.
//! - [`train`]: the training loop, metrics, checkpoints, evaluation, experiment grids.
//! - [`report`]: the report of a folder of runs: tables, curves, statistics, HTML.
//! - [`stats`]: statistics shared by report and explain (pure numbers, imports nothing).
//! - [`cli`]: the `visionnet` command line.

pub mod bench;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod explain;
pub mod io;
pub mod model;
pub mod report;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
