//! Evaluation of a model on a labelled set: loss, accuracy, per-class accuracy, confusion
//! matrix, and each image's prediction.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::metrics::{Evaluation, Prediction};
use crate::data::{Augment, EpochPlan, HostBatch, ImageSet, Normalize};
use crate::error::Result;
use crate::model::{ImageClassifier, Network};

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
    let confidences = best
        .into_data_as::<f32>()
        .iter::<f32>()
        .map(f32::exp)
        .collect();
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
        let (images, _) = batch.into_tensors(device);
        model.forward(images)
    })
}

/// Flip test-time augmentation: the logits of each image and of its horizontal mirror,
/// averaged (as airbench averages them).
///
/// # Shapes
/// - `images`: `[n, c, h, w]`
/// - output: `[n, classes]`
pub fn flip_tta_logits(model: &Network, images: Tensor<4>) -> Tensor<2> {
    let mirrored = images.clone().flip([3]);
    (model.forward(images) + model.forward(mirrored)).div_scalar(2.0)
}

/// [`evaluate`] with flip test-time augmentation ([`flip_tta_logits`]).
pub fn evaluate_flip_tta(
    model: &Network,
    set: &ImageSet,
    norm: &Normalize,
    batch_size: usize,
    device: &Device,
) -> Result<(Evaluation, Vec<Prediction>)> {
    evaluate_with(set, norm, batch_size, |batch| {
        let (images, _) = batch.into_tensors(device);
        flip_tta_logits(model, images)
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
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), &logits.device());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::params::tests::tiny_cnn;

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn flip_tta_logits_are_the_mean_of_the_image_and_its_mirror() {
        let device = Device::flex();
        let model = tiny_cnn(&device, 4);
        let (n, c, h, w) = (3, 3, 16, 16);
        let pixels: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        // The mirror built by hand on the host: column x takes column w - 1 - x.
        let mirror: Vec<f32> = (0..n * c * h * w)
            .map(|i| {
                let (row, x) = (i / w, i % w);
                pixels[row * w + (w - 1 - x)]
            })
            .collect();
        let images = Tensor::<4>::from_data(TensorData::new(pixels, [n, c, h, w]), &device);
        let mirrored = Tensor::<4>::from_data(TensorData::new(mirror, [n, c, h, w]), &device);
        let plain = to_vec(model.forward(images.clone()));
        let flipped = to_vec(model.forward(mirrored));
        let tta = to_vec(flip_tta_logits(&model, images));
        assert_eq!(tta.len(), n * 4);
        for ((t, a), b) in tta.iter().zip(&plain).zip(&flipped) {
            assert!((t - (a + b) / 2.0).abs() < 1e-5, "{t} != ({a} + {b}) / 2");
        }
        // The mirror's logits differ from the image's, so the average is not the plain logits.
        assert!(
            plain
                .iter()
                .zip(&flipped)
                .any(|(a, b)| (a - b).abs() > 1e-4)
        );
    }
}
