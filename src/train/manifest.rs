//! `run.json`: what a run was, so it can be reproduced, resumed and reported.

use super::config::TrainConfig;

/// Where the data came from and exactly which images each split held.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataRecord {
    /// The dataset folder.
    pub root: String,
    /// Its format.
    pub format: crate::data::Format,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// `[channels, height, width]`.
    pub image_shape: [usize; 3],
    /// Images trained on, held out for validation, and tested on.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
    /// Test images.
    pub test_images: usize,
    /// SHA-256 fingerprints of the train, validation and test splits (pixels, labels, classes).
    pub fingerprints: [String; 3],
}

/// `RUN_DIR/run.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunManifest {
    /// The full configuration.
    pub config: TrainConfig,
    /// The seed (also in `config`, repeated for the eye).
    pub seed: u64,
    /// `visionnet` version.
    pub crate_version: String,
    /// Git commit the binary was built from.
    pub git_commit: String,
    /// The backend the run computes on.
    pub backend: String,
    /// Threads of the CPU pool.
    pub threads: usize,
    /// The data.
    pub data: DataRecord,
    /// When the run started (RFC 3339).
    pub started: String,
}

/// The crate version and git commit of this build.
pub fn build_info() -> (String, String) {
    (
        env!("CARGO_PKG_VERSION").to_string(),
        env!("VISIONNET_GIT_COMMIT").to_string(),
    )
}
