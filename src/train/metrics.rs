//! Per-epoch metrics (`metrics.csv`), the end-of-run summary (`summary.json`) and per-image test
//! predictions (`predictions.csv`).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::{read_csv, write_csv};

/// One row of `metrics.csv`: one epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (augmented images, training mode).
    pub train_loss: f64,
    /// Training accuracy over the epoch (augmented images, training mode), in [0, 1].
    pub train_accuracy: f64,
    /// Validation loss (inference mode); empty without a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy in [0, 1]; empty without a validation set.
    pub val_accuracy: Option<f64>,
    /// Validation accuracy with flip test-time augmentation (`--tta-flip true`); empty
    /// otherwise.
    #[serde(default)]
    pub val_accuracy_tta: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall-clock seconds of the epoch: training and validation.
    pub seconds: f64,
    /// Training images per second (training steps only).
    pub images_per_second: f64,
}

/// `RUN_DIR/metrics.csv`.
pub struct MetricsCsv {
    path: PathBuf,
}

impl MetricsCsv {
    /// The metrics file of `run_dir`.
    pub fn new(run_dir: &Path) -> Self {
        Self {
            path: run_dir.join("metrics.csv"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row, in order; none if the file does not exist.
    pub fn read(&self) -> Result<Vec<EpochMetrics>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        read_csv(&self.path)
    }

    /// Rewrites the file with `rows` (atomically: temp file, then rename).
    pub fn write(&self, rows: &[EpochMetrics]) -> Result<()> {
        write_csv(&self.path, rows)
    }
}

/// Accuracy of one class on the test set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub class: String,
    /// Test images of the class.
    pub count: usize,
    /// Fraction of them classified correctly.
    pub accuracy: f64,
}

/// The outcome of evaluating a model on a labelled set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Mean cross-entropy (without label smoothing).
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Per class.
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Builds the evaluation from per-image labels and predictions.
    pub fn from_predictions(
        classes: &[String],
        labels: &[u16],
        predictions: &[u16],
        loss: f64,
    ) -> Self {
        let k = classes.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&l, &p) in labels.iter().zip(predictions) {
            confusion[l as usize][p as usize] += 1;
        }
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let per_class = classes
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let count: usize = confusion[c].iter().sum();
                ClassAccuracy {
                    class: name.clone(),
                    count,
                    accuracy: if count == 0 {
                        0.0
                    } else {
                        confusion[c][c] as f64 / count as f64
                    },
                }
            })
            .collect();
        Self {
            images: labels.len(),
            loss,
            accuracy: correct as f64 / labels.len().max(1) as f64,
            per_class,
            confusion,
        }
    }
}

/// One test image's outcome, a row of `predictions.csv` (what paired statistics need).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Index of the image in the test set.
    pub index: usize,
    /// True label.
    pub label: u16,
    /// Predicted label.
    pub prediction: u16,
    /// Softmax probability of the prediction.
    pub confidence: f32,
}

fn last_weights() -> String {
    "last".to_string()
}

/// `summary.json`: the end of a run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Registry name of the model.
    pub model: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Test-set evaluation of the final model.
    pub test: Evaluation,
    /// The same with flip test-time augmentation (`--tta-flip true`), beside the plain figure;
    /// its per-image predictions are in `predictions-tta.csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_tta: Option<Evaluation>,
    /// Which weights were evaluated: `"last"`, or `"ema"` (the moving average, `--ema`).
    #[serde(default = "last_weights")]
    pub weights: String,
    /// Best validation accuracy over the epochs, and its epoch.
    pub best_val_accuracy: Option<(f64, usize)>,
    /// Seconds of training and validation, summed over epochs.
    pub train_seconds: f64,
    /// Median training images per second over the epochs.
    pub images_per_second: f64,
}
