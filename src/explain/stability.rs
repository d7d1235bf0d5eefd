//! Do two models' heat maps differ by more than two seeds of one model do?
//!
//! Each side of a comparison is several checkpoints (seeds of one grid cell). For every image,
//! every method and every pair of checkpoints, the maps of the image's true class are compared
//! ([`super::similarity`]: Spearman, SSIM, top-k IoU); per image, the pairs are averaged within
//! A, within B, within either (both sides' pairs together) and between A and B. The A-B
//! dissimilarity exceeds the within-model one when `within - between` (a similarity gap) has a
//! 95% bootstrap interval over images above 0. With one checkpoint on a side that side has no
//! within-model pair; with one on both there is no baseline, and the report says so.
//!
//! The true class is explained (not each model's prediction) so that a difference of maps is
//! one of evidence for the same class, not of which class is explained.

use super::cam::CamMethod;
use super::gradcam::CamMap;
use super::similarity::{Similarity, input_sized, similarity};
use crate::data::batches::mix_seed;
use crate::stats::bootstrap::{MeanInterval, REPLICATES, mean_interval};

/// One measure's summary over images.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MeasureStability {
    /// `spearman`, `ssim` or `top_k_iou`.
    pub measure: String,
    /// Mean similarity of pairs of A's checkpoints (none with one checkpoint).
    pub within_a: Option<MeanInterval>,
    /// Of pairs of B's checkpoints.
    pub within_b: Option<MeanInterval>,
    /// Of pairs within either model.
    pub within: Option<MeanInterval>,
    /// Of A-B pairs.
    pub between: Option<MeanInterval>,
    /// `within - between` per image: how much less alike A and B are than seeds of one model.
    pub excess: Option<MeanInterval>,
    /// Whether `excess`'s interval lies above 0.
    pub exceeds: bool,
}

/// One method on one set of images.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodStability {
    /// Method.
    pub method: CamMethod,
    /// `shown` (the galleries' images) or `sample` (random test images).
    pub images: String,
    /// Images.
    pub count: usize,
    /// Each measure.
    pub measures: Vec<MeasureStability>,
    /// Why there is no within-model baseline, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Per-image means of one pair class, `[measure]`.
pub type PerImage = Vec<[f64; 3]>;

/// Compares the maps `maps[side][checkpoint][image]` (the same images on every checkpoint) of
/// images of `[h, w]` input; returns the summary and the per-image `(within_a, within_b,
/// between)` means.
pub fn stability(
    method: CamMethod,
    images: &str,
    maps: &[Vec<Vec<CamMap>>; 2],
    input: [usize; 2],
    seed: u64,
) -> (MethodStability, [PerImage; 3]) {
    let count = maps[0].first().map(|m| m.len()).unwrap_or(0);
    let upsampled: Vec<Vec<Vec<Vec<f64>>>> = maps
        .iter()
        .map(|side| {
            side.iter()
                .map(|ms| {
                    ms.iter()
                        .map(|m| input_sized(&m.normalised, m.shape, input))
                        .collect()
                })
                .collect()
        })
        .collect();
    let mean_of = |sims: &[Similarity]| -> [f64; 3] {
        std::array::from_fn(|k| {
            let xs: Vec<f64> = sims
                .iter()
                .map(|s| s.values()[k])
                .filter(|v| v.is_finite())
                .collect();
            if xs.is_empty() {
                f64::NAN
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        })
    };
    let mut per = [
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
    ];
    let mut within_all = Vec::with_capacity(count);
    for i in 0..count {
        let pairs_within = |s: usize| -> Vec<Similarity> {
            let n = upsampled[s].len();
            let mut out = Vec::new();
            for a in 0..n {
                for b in a + 1..n {
                    out.push(similarity(&upsampled[s][a][i], &upsampled[s][b][i], input));
                }
            }
            out
        };
        let (wa, wb) = (pairs_within(0), pairs_within(1));
        let mut between = Vec::new();
        for a in &upsampled[0] {
            for b in &upsampled[1] {
                between.push(similarity(&a[i], &b[i], input));
            }
        }
        let both: Vec<Similarity> = wa.iter().chain(&wb).copied().collect();
        per[0].push(mean_of(&wa));
        per[1].push(mean_of(&wb));
        per[2].push(mean_of(&between));
        within_all.push(mean_of(&both));
    }
    let interval = |xs: Vec<f64>, s: u64| mean_interval(&xs, REPLICATES, 0.95, s);
    let measures = Similarity::NAMES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let s = mix_seed(&[seed, k as u64]);
            let column = |rows: &PerImage| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
            let excess: Vec<f64> = within_all
                .iter()
                .zip(&per[2])
                .map(|(w, b)| w[k] - b[k])
                .collect();
            let excess = interval(excess, s ^ 4);
            MeasureStability {
                measure: name.to_string(),
                within_a: interval(column(&per[0]), s),
                within_b: interval(column(&per[1]), s ^ 1),
                within: interval(within_all.iter().map(|r| r[k]).collect(), s ^ 2),
                between: interval(column(&per[2]), s ^ 3),
                exceeds: excess.as_ref().is_some_and(|e| e.above(0.0)),
                excess,
            }
        })
        .collect();
    let note = (maps[0].len() < 2 && maps[1].len() < 2)
        .then(|| "one checkpoint per side: no within-model pair to compare with; give each side several seeds".to_string());
    (
        MethodStability {
            method,
            images: images.to_string(),
            count,
            measures,
            note,
        },
        per,
    )
}
