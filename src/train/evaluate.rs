//! Evaluation of a model on a labelled set: loss, accuracy, per-class accuracy, confusion
//! matrix, and each image's prediction.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::metrics::{Evaluation, Prediction};
use crate::data::{Augment, EpochPlan, HostBatch, ImageSet, Normalize};
use crate::error::Result;
use crate::model::Network;

/// Turns a host batch into `(images, labels)` tensors on `device`.
pub fn batch_tensors(batch: HostBatch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.labels.len();
    let images = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [n]), device);
    (images, labels)
}

/// Per-image log-probabilities of a batch: `(loss sum, predictions, confidences)`.
fn score(logits: Tensor<2>, labels: Tensor<1, Int>) -> (f64, Vec<u16>, Vec<f32>) {
    let [n, _] = logits.dims();
    let log_probs = log_softmax(logits, 1); // [n, classes]
    let picked = log_probs.clone().gather(1, labels.reshape([n, 1])); // [n, 1]
    let loss_sum = -(picked.sum().into_scalar::<f64>());
    let (best, index) = log_probs.max_dim_with_indices(1); // [n, 1] each
    let predictions = index
        .into_data_as::<i64>()
        .iter::<i64>()
        .map(|p| p as u16)
        .collect();
    let confidences = best.into_data_as::<f32>().iter::<f32>().map(f32::exp).collect();
    (loss_sum, predictions, confidences)
}

/// Evaluates `model` (in inference mode, on `device`) on every image of `set`.
pub fn evaluate(
    model: &Network,
    set: &ImageSet,
    norm: &Normalize,
    batch_size: usize,
    device: &Device,
) -> Result<(Evaluation, Vec<Prediction>)> {
    evaluate_with(set, norm, batch_size, |batch| {
        let (images, _) = batch_tensors(batch, device);
        model.forward(images)
    })
}

/// Evaluates the logits `logits_of` gives for each batch of `set` (in order, unaugmented).
pub fn evaluate_with(
    set: &ImageSet,
    norm: &Normalize,
    batch_size: usize,
    mut logits_of: impl FnMut(HostBatch) -> Tensor<2>,
) -> Result<(Evaluation, Vec<Prediction>)> {
    let plan = EpochPlan {
        order: (0..set.len()).collect(),
        batch_size,
        drop_last: false,
        augment: Augment::NONE,
        seed: 0,
    };
    let mut loss_sum = 0.0;
    let mut predictions = Vec::with_capacity(set.len());
    plan.for_each(set, norm, |_, batch| -> Result<()> {
        let indices = batch.indices.clone();
        let labels = batch.labels.clone();
        let logits = logits_of(batch);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), &logits.device());
        let (loss, preds, confs) = score(logits, labels);
        loss_sum += loss;
        for ((index, prediction), confidence) in indices.into_iter().zip(preds).zip(confs) {
            predictions.push(Prediction {
                index,
                label: set.labels[index],
                prediction,
                confidence,
            });
        }
        Ok(())
    })?;
    let labels: Vec<u16> = predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<u16> = predictions.iter().map(|p| p.prediction).collect();
    let evaluation = Evaluation::from_predictions(
        &set.classes,
        &labels,
        &predicted,
        loss_sum / set.len().max(1) as f64,
    );
    Ok((evaluation, predictions))
}
