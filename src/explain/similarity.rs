//! How alike two heat maps are: Spearman's rank correlation, SSIM and the overlap of their
//! top-k pixels, on the normalised maps upsampled to the input's size (so that maps of layers
//! of different resolution compare, and SSIM has windows to slide).
//!
//! - Spearman: [`crate::stats::rank::spearman`] of the pixel values (NaN when a map is
//!   constant, e.g. blank: such pairs are left out of means, and counted).
//! - SSIM (Wang et al., 2004) as scikit-image's `structural_similarity` computes it for images
//!   in [0, 1]: 7x7 uniform windows, sample covariances, `K1 = 0.01`, `K2 = 0.03`, averaged
//!   over the windows that lie inside the image.
//! - Top-k IoU: the intersection over union of the `TOP_FRACTION` highest pixels of each map
//!   (ties broken by position, so the sets always hold exactly k pixels).

use super::overlay::upsample;
use crate::stats::rank::spearman;

/// The fraction of pixels in the top-k sets.
pub const TOP_FRACTION: f64 = 0.1;

/// SSIM's window side.
const WINDOW: usize = 7;

/// The three similarities of a pair of maps.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Similarity {
    /// Spearman's rank correlation (NaN if a map is constant).
    pub spearman: f64,
    /// Structural similarity.
    pub ssim: f64,
    /// Intersection over union of the top-k pixels.
    pub top_k_iou: f64,
}

impl Similarity {
    /// The names of the three measures, in the order of [`values`](Self::values).
    pub const NAMES: [&'static str; 3] = ["spearman", "ssim", "top_k_iou"];

    /// The three measures as an array.
    pub fn values(&self) -> [f64; 3] {
        [self.spearman, self.ssim, self.top_k_iou]
    }
}

/// A normalised `[h, w]` map upsampled (bilinear, pixel centres aligned) to `[height, width]`.
pub fn input_sized(map: &[f32], shape: [usize; 2], [height, width]: [usize; 2]) -> Vec<f64> {
    upsample(map, shape, width as u32, height as u32)
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The similarities of two maps of the same `[height, width]` (already upsampled).
pub fn similarity(a: &[f64], b: &[f64], [height, width]: [usize; 2]) -> Similarity {
    Similarity {
        spearman: spearman(a, b),
        ssim: ssim(a, b, [height, width]),
        top_k_iou: top_k_iou(a, b, TOP_FRACTION),
    }
}

/// SSIM of two `[height, width]` images with values in [0, 1] (data range 1).
pub fn ssim(a: &[f64], b: &[f64], [height, width]: [usize; 2]) -> f64 {
    assert_eq!(a.len(), height * width, "a fills the shape");
    assert_eq!(b.len(), height * width, "b fills the shape");
    let win = WINDOW.min(height).min(width);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let np = (win * win) as f64;
    let cov_norm = if np > 1.0 { np / (np - 1.0) } else { 1.0 };
    let mut total = 0.0;
    let mut count = 0usize;
    for y in 0..=height - win {
        for x in 0..=width - win {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..win {
                for dx in 0..win {
                    let i = (y + dy) * width + x + dx;
                    sa += a[i];
                    sb += b[i];
                    saa += a[i] * a[i];
                    sbb += b[i] * b[i];
                    sab += a[i] * b[i];
                }
            }
            let (ma, mb) = (sa / np, sb / np);
            let va = cov_norm * (saa / np - ma * ma);
            let vb = cov_norm * (sbb / np - mb * mb);
            let vab = cov_norm * (sab / np - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * vab + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count as f64
}

/// The indices of the `k` largest values (ties: the earlier index first).
pub fn top_k(values: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]).then(i.cmp(&j)));
    order.truncate(k);
    order
}

/// The IoU of the top `fraction` of pixels of two maps.
pub fn top_k_iou(a: &[f64], b: &[f64], fraction: f64) -> f64 {
    let k = ((a.len() as f64 * fraction).round() as usize).clamp(1, a.len());
    let mut in_a = vec![false; a.len()];
    for i in top_k(a, k) {
        in_a[i] = true;
    }
    let shared = top_k(b, k).into_iter().filter(|&i| in_a[i]).count();
    shared as f64 / (2 * k - shared) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_maps_are_fully_similar() {
        let a: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64 / 100.0).collect();
        let s = similarity(&a, &a, [10, 10]);
        assert!(
            (s.spearman - 1.0).abs() < 1e-12 && (s.ssim - 1.0).abs() < 1e-12 && s.top_k_iou == 1.0
        );
    }

    #[test]
    fn ssim_matches_scikit_image() {
        // scikit-image's structural_similarity(a, b, data_range=1) algorithm (uniform_filter of
        // size 7, sample covariance, cropped by 3), run with scipy on a = (i % 8) / 7,
        // b = ((i * 3) % 8) / 7, an 8x8 grid with row-major i:
        let a: Vec<f64> = (0..64).map(|i| (i % 8) as f64 / 7.0).collect();
        let b: Vec<f64> = (0..64).map(|i| ((i * 3) % 8) as f64 / 7.0).collect();
        let s = ssim(&a, &b, [8, 8]);
        assert!((s - SKIMAGE).abs() < 1e-9, "{s}");
    }
    const SKIMAGE: f64 = 0.2523946940518572;

    #[test]
    fn top_k_iou_counts_the_shared_pixels() {
        let a = [0.9, 0.8, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let b = [0.9, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        // k = 2 of 10 at fraction 0.2: {0, 1} and {0, 2} share one of three.
        assert!((top_k_iou(&a, &b, 0.2) - 1.0 / 3.0).abs() < 1e-12);
    }
}
