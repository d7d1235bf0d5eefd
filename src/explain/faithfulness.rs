//! Faithfulness of heat maps: does the model's confidence depend on the pixels a map points at?
//!
//! Each measure perturbs the input in the order or by the values of the map (the normalised
//! map upsampled to the input, pixel centres aligned, as pytorch-grad-cam's `scale_cam_image`)
//! and reads the softmax probability of the explained class:
//!
//! - **Deletion / insertion AUC** (Petsiuk et al., 2018, RISE): pixels are removed (set to 0 in
//!   the normalised input, the dataset's mean colour) or inserted into a blurred copy
//!   (Gaussian, `sigma = BLUR_SIGMA` input pixels), most relevant first, in `steps` equal steps;
//!   the area under the probability curve over the fraction of pixels, by the trapezoid rule.
//!   Lower deletion and higher insertion AUC mean a more faithful map. Ties in the map (a blank
//!   map) are taken in pixel order.
//! - **ROAD** (Rong et al., 2022): the `fractions` of pixels most relevant first (MoRF) or least
//!   relevant first (LeRF) are removed and filled by [`super::road`]'s noisy linear imputation;
//!   the probability is averaged over the fractions. Lower MoRF and higher LeRF are better;
//!   `road` is `(LeRF - MoRF) / 2`, pytorch-grad-cam's `ROADCombined` (higher is better).
//! - **Average drop / increase in confidence** (Chattopadhyay et al., 2018): the input is
//!   multiplied by the map; drop is `max(0, p - p_map) / p` in percent, increase is whether
//!   `p_map > p` (the mean is the percentage of images).
//!
//! Every perturbed input of a group of images is built on the host and the model sees them in
//! batches of `batch_size`, so the cost is `steps`-proportional forward passes, not per-pixel
//! ones.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::gradcam::CamMap;
use super::overlay::upsample;
use super::road;
use crate::data::batches::mix_seed;
use crate::model::{ImageClassifier, Network};

/// A faithfulness measure.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Deletion AUC (RISE): lower is better.
    Deletion,
    /// Insertion AUC (RISE): higher is better.
    Insertion,
    /// ROAD: MoRF and LeRF with noisy linear imputation.
    Road,
    /// Average drop and increase in confidence on the input times the map.
    Confidence,
}

impl Metric {
    /// Every measure.
    pub const ALL: [Metric; 4] = [
        Metric::Deletion,
        Metric::Insertion,
        Metric::Road,
        Metric::Confidence,
    ];
}

/// The Gaussian blur of insertion's starting image, in input pixels (RISE blurs 224-pixel
/// images with sigma 5; on 32-pixel CIFAR images a sigma of 2 removes the shapes a model
/// reads, which is what the start of the insertion curve needs).
pub const BLUR_SIGMA: f64 = 2.0;

/// How the measures are taken.
#[derive(Clone, Debug)]
pub struct MetricOptions {
    /// The measures.
    pub metrics: Vec<Metric>,
    /// Steps of the deletion and insertion curves (each removes `1 / steps` of the pixels).
    pub steps: usize,
    /// ROAD's fractions of pixels removed.
    pub road_fractions: Vec<f64>,
    /// Perturbed inputs per forward pass.
    pub batch_size: usize,
    /// Seed of ROAD's noise.
    pub seed: u64,
}

impl MetricOptions {
    /// The defaults: 16 steps, ROAD at 10, 30, 50, 70 and 90 %.
    pub fn new(metrics: Vec<Metric>, batch_size: usize, seed: u64) -> Self {
        Self {
            metrics,
            steps: 16,
            road_fractions: vec![0.1, 0.3, 0.5, 0.7, 0.9],
            batch_size,
            seed,
        }
    }

    fn has(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric)
    }

    /// Perturbed inputs per image.
    pub fn inputs_per_image(&self) -> usize {
        let curve = self.steps + 1;
        self.has(Metric::Deletion) as usize * curve
            + self.has(Metric::Insertion) as usize * curve
            + self.has(Metric::Road) as usize * 2 * self.road_fractions.len()
            + self.has(Metric::Confidence) as usize
    }
}

/// One image's measures (`None` for those not taken).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ImageScores {
    /// Deletion AUC.
    pub deletion_auc: Option<f64>,
    /// Insertion AUC.
    pub insertion_auc: Option<f64>,
    /// ROAD MoRF: mean probability over the fractions.
    pub road_morf: Option<f64>,
    /// ROAD LeRF: mean probability over the fractions.
    pub road_lerf: Option<f64>,
    /// `(LeRF - MoRF) / 2`.
    pub road: Option<f64>,
    /// Drop in confidence, percent.
    pub drop: Option<f64>,
    /// Increase in confidence: 100 if the probability rose, else 0.
    pub increase: Option<f64>,
}

impl ImageScores {
    /// Names of the values, in the order of [`values`](Self::values).
    pub const NAMES: [&'static str; 7] = [
        "deletion_auc",
        "insertion_auc",
        "road_morf",
        "road_lerf",
        "road",
        "drop",
        "increase",
    ];

    /// The values in the order of [`NAMES`](Self::NAMES).
    pub fn values(&self) -> [Option<f64>; 7] {
        [
            self.deletion_auc,
            self.insertion_auc,
            self.road_morf,
            self.road_lerf,
            self.road,
            self.drop,
            self.increase,
        ]
    }
}

/// What one perturbed input is for.
#[derive(Clone, Copy)]
enum Slot {
    Deletion(usize),
    Insertion(usize),
    Morf(usize),
    Lerf(usize),
    Confidence,
}

/// Measures the maps of `images` (normalised, `[c, h, w]` each, row-major) on `model` (an
/// inference copy). `ids` are the images' identities for ROAD's noise (test indices), so a
/// value does not depend on which images are measured together.
pub fn measure(
    model: &Network,
    images: &[Vec<f32>],
    shape: [usize; 3],
    maps: &[CamMap],
    ids: &[u64],
    options: &MetricOptions,
    device: &Device,
) -> Vec<ImageScores> {
    assert_eq!(images.len(), maps.len(), "one map per image");
    let per_image = options.inputs_per_image().max(1);
    let group = (options.batch_size / per_image).clamp(1, 64);
    let mut out = Vec::with_capacity(images.len());
    for start in (0..images.len()).step_by(group) {
        let end = (start + group).min(images.len());
        let mut inputs: Vec<f32> = Vec::new();
        let mut slots: Vec<(usize, Slot)> = Vec::new();
        for i in start..end {
            perturb(&images[i], shape, &maps[i], ids[i], options, |slot, x| {
                inputs.extend_from_slice(&x);
                slots.push((i - start, slot));
            });
        }
        let probabilities = probabilities(
            model,
            &inputs,
            shape,
            &slots,
            maps,
            start,
            options.batch_size,
            device,
        );
        let mut curves: Vec<Curves> = (start..end).map(|_| Curves::new(options)).collect();
        for ((i, slot), p) in slots.iter().zip(probabilities) {
            let c = &mut curves[*i];
            match *slot {
                Slot::Deletion(s) => c.deletion[s] = p,
                Slot::Insertion(s) => c.insertion[s] = p,
                Slot::Morf(f) => c.morf[f] = p,
                Slot::Lerf(f) => c.lerf[f] = p,
                Slot::Confidence => c.confidence = p,
            }
        }
        for (i, c) in curves.into_iter().enumerate() {
            out.push(c.scores(options, maps[start + i].target_probability as f64));
        }
    }
    out
}

/// The probability curves of one image.
struct Curves {
    deletion: Vec<f64>,
    insertion: Vec<f64>,
    morf: Vec<f64>,
    lerf: Vec<f64>,
    confidence: f64,
}

impl Curves {
    fn new(options: &MetricOptions) -> Self {
        let f = options.road_fractions.len();
        Self {
            deletion: vec![0.0; options.steps + 1],
            insertion: vec![0.0; options.steps + 1],
            morf: vec![0.0; f],
            lerf: vec![0.0; f],
            confidence: 0.0,
        }
    }

    fn scores(&self, options: &MetricOptions, p: f64) -> ImageScores {
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let mut s = ImageScores::default();
        if options.has(Metric::Deletion) {
            s.deletion_auc = Some(auc(&self.deletion));
        }
        if options.has(Metric::Insertion) {
            s.insertion_auc = Some(auc(&self.insertion));
        }
        if options.has(Metric::Road) {
            let (m, l) = (mean(&self.morf), mean(&self.lerf));
            s.road_morf = Some(m);
            s.road_lerf = Some(l);
            s.road = Some((l - m) / 2.0);
        }
        if options.has(Metric::Confidence) {
            s.drop = Some(100.0 * (p - self.confidence).max(0.0) / p.max(f64::MIN_POSITIVE));
            s.increase = Some(if self.confidence > p { 100.0 } else { 0.0 });
        }
        s
    }
}

/// The area under a curve sampled at equal steps over [0, 1] (trapezoid rule).
pub fn auc(curve: &[f64]) -> f64 {
    let steps = (curve.len() - 1).max(1) as f64;
    (curve.iter().sum::<f64>() - (curve[0] + curve[curve.len() - 1]) / 2.0) / steps
}

/// Every perturbed input of one image, handed to `emit` with its slot.
fn perturb(
    image: &[f32],
    shape: [usize; 3],
    map: &CamMap,
    id: u64,
    options: &MetricOptions,
    mut emit: impl FnMut(Slot, Vec<f32>),
) {
    let [c, h, w] = shape;
    let plane = h * w;
    let relevance = upsample(&map.normalised, map.shape, w as u32, h as u32); // [h * w]
    let mut order: Vec<usize> = (0..plane).collect(); // most relevant first, ties in pixel order
    order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]).then(a.cmp(&b)));
    let count = |fraction: f64| ((fraction * plane as f64).round() as usize).min(plane);
    let set = |x: &mut [f32], p: usize, from: &[f32]| {
        for ch in 0..c {
            x[ch * plane + p] = from[ch * plane + p];
        }
    };
    if options.has(Metric::Deletion) {
        let zeros = vec![0.0f32; image.len()];
        for s in 0..=options.steps {
            let mut x = image.to_vec();
            for &p in &order[..count(s as f64 / options.steps as f64)] {
                set(&mut x, p, &zeros);
            }
            emit(Slot::Deletion(s), x);
        }
    }
    if options.has(Metric::Insertion) {
        let blurred = gaussian_blur(image, shape, BLUR_SIGMA);
        for s in 0..=options.steps {
            let mut x = blurred.clone();
            for &p in &order[..count(s as f64 / options.steps as f64)] {
                set(&mut x, p, image);
            }
            emit(Slot::Insertion(s), x);
        }
    }
    if options.has(Metric::Road) {
        for (f, &fraction) in options.road_fractions.iter().enumerate() {
            let n = count(fraction);
            for (most, pixels) in [(true, &order[..n]), (false, &order[plane - n..])] {
                let mut removed = vec![false; plane];
                pixels.iter().for_each(|&p| removed[p] = true);
                let seed = mix_seed(&[options.seed, id, f as u64, most as u64]);
                let x = road::impute(image, shape, &removed, road::NOISE, seed);
                emit(if most { Slot::Morf(f) } else { Slot::Lerf(f) }, x);
            }
        }
    }
    if options.has(Metric::Confidence) {
        let x = (0..image.len())
            .map(|i| image[i] * relevance[i % plane])
            .collect();
        emit(Slot::Confidence, x);
    }
}

/// The explained class's probability for each perturbed input, `batch_size` per pass.
#[allow(clippy::too_many_arguments)]
fn probabilities(
    model: &Network,
    inputs: &[f32],
    [c, h, w]: [usize; 3],
    slots: &[(usize, Slot)],
    maps: &[CamMap],
    first: usize,
    batch_size: usize,
    device: &Device,
) -> Vec<f64> {
    let len = c * h * w;
    let mut out = Vec::with_capacity(slots.len());
    for (chunk, slot_chunk) in inputs
        .chunks(len * batch_size.max(1))
        .zip(slots.chunks(batch_size.max(1)))
    {
        let n = slot_chunk.len();
        let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [n, c, h, w]), device);
        let p: Vec<f32> = softmax(model.forward(x), 1)
            .into_data_as::<f32>()
            .iter::<f32>()
            .collect();
        let classes = p.len() / n;
        for (row, (i, _)) in slot_chunk.iter().enumerate() {
            out.push(p[row * classes + maps[first + i].target] as f64);
        }
    }
    out
}

/// A `[c, h, w]` image blurred by a Gaussian of `sigma` pixels (separable, edges clamped).
pub fn gaussian_blur(image: &[f32], [c, h, w]: [usize; 3], sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as i64;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let mut out = vec![0.0f32; image.len()];
    let mut rows = vec![0.0f64; h * w];
    for ch in 0..c {
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                rows[y * w + x] = (-radius..=radius)
                    .map(|d| {
                        kernel[(d + radius) as usize]
                            * plane[y * w + (x as i64 + d).clamp(0, w as i64 - 1) as usize] as f64
                    })
                    .sum();
            }
        }
        for y in 0..h {
            for x in 0..w {
                out[ch * h * w + y * w + x] = (-radius..=radius)
                    .map(|d| {
                        kernel[(d + radius) as usize]
                            * rows[(y as i64 + d).clamp(0, h as i64 - 1) as usize * w + x]
                    })
                    .sum::<f64>() as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_the_trapezoid_area() {
        assert!((auc(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
        assert!((auc(&[0.0, 1.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn blur_keeps_a_constant_image_and_its_mean() {
        let flat = vec![0.25f32; 3 * 8 * 8];
        assert!(
            gaussian_blur(&flat, [3, 8, 8], 2.0)
                .iter()
                .all(|v| (v - 0.25).abs() < 1e-6)
        );
        let mut spike = vec![0.0f32; 16 * 16];
        spike[8 * 16 + 8] = 1.0;
        let blurred = gaussian_blur(&spike, [1, 16, 16], 1.0);
        assert!((blurred.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(blurred[8 * 16 + 8] < 0.2 && blurred[8 * 16 + 9] > 0.05);
    }
}
