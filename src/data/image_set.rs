//! In-memory image sets: every image of a split as `u8`, channel-major, with its label.

use sha2::{Digest, Sha256};

/// The images of one split, decoded once and kept in memory as `u8`.
///
/// # Layout
/// `pixels` holds `len()` images one after another, each `[channels, height, width]`
/// (channel-major, as CIFAR's binary files store them and as tensors want them).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// `[n, channels, height, width]`, row-major.
    pub pixels: Vec<u8>,
    /// One label per image, an index into `classes`.
    pub labels: Vec<u16>,
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl ImageSet {
    /// An empty set of images of `shape` over `classes`.
    pub fn empty(shape: [usize; 3], classes: Vec<String>) -> Self {
        Self {
            pixels: Vec::new(),
            labels: Vec::new(),
            shape,
            classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image: channels * height * width.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `index`, `[channels, height, width]`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order (a subset or a permutation).
    pub fn select(&self, indices: &[usize]) -> Self {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Self {
            pixels,
            labels,
            shape: self.shape,
            classes: self.classes.clone(),
        }
    }

    /// Per-channel mean and standard deviation of the pixel values, scaled to [0, 1].
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0f64; c];
        let mut sum_sq = vec![0f64; c];
        for image in self.pixels.chunks_exact(c * plane) {
            for (ch, values) in image.chunks_exact(plane).enumerate() {
                // Integer sums are exact; one u64 per plane keeps them far from overflow.
                let (s, s2) = values.iter().fold((0u64, 0u64), |(s, s2), &v| {
                    (s + v as u64, s2 + (v as u64) * (v as u64))
                });
                sum[ch] += s as f64;
                sum_sq[ch] += s2 as f64;
            }
        }
        let count = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count / 255.0).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(s2, m)| (s2 / count / (255.0 * 255.0) - m * m).max(0.0).sqrt())
            .collect::<Vec<f64>>();
        (
            mean.iter().map(|&m| m as f32).collect(),
            std.iter().map(|&s| s as f32).collect(),
        )
    }

    /// SHA-256 of shape, classes, labels and pixels: identifies the data a run saw.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for d in self.shape {
            hasher.update((d as u64).to_le_bytes());
        }
        for class in &self.classes {
            hasher.update(class.as_bytes());
            hasher.update([0]);
        }
        for label in &self.labels {
            hasher.update(label.to_le_bytes());
        }
        hasher.update(&self.pixels);
        format!("{:x}", hasher.finalize())
    }
}
