//! Augmentation and normalisation of `u8` images into `f32` batch buffers.
//!
//! Both run on the host, per image, while the model trains on the previous batch.

use rand::{Rng, RngExt};

/// The random augmentations applied to training images. Each is switchable.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Random crop after zero-padding each side by this many pixels; 0 disables it.
    pub crop_padding: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// Cutout (DeVries and Taylor, 2017): one random square of this many pixels a side, lying
    /// inside the image, set to 0 after normalisation (the mean colour when normalising by the
    /// training set); 0 disables it. Applied after the crop and flip.
    #[serde(default)]
    pub cutout: usize,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        crop_padding: 0,
        flip: false,
        cutout: 0,
    };

    /// Whether any augmentation is on.
    pub fn is_active(&self) -> bool {
        self.crop_padding > 0 || self.flip || self.cutout > 0
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    /// Per-channel mean of the pixel values scaled to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the pixel values scaled to [0, 1].
    pub std: Vec<f32>,
}

impl Normalize {
    /// Only scales to [0, 1]: mean 0, std 1 for each of `channels`.
    pub fn identity(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// Writes image `src` (`[c, h, w]` `u8`) into `dst` (`[c, h, w]` `f32`), normalised, with a
/// random crop, flip and cutout drawn from `rng` when `augment` asks for them. A cutout larger
/// than the image blanks all of it (the trainer refuses such a size beforehand).
pub fn augment_into<R: Rng>(
    src: &[u8],
    shape: [usize; 3],
    augment: Augment,
    norm: &Normalize,
    rng: &mut R,
    dst: &mut [f32],
) {
    let [c, h, w] = shape;
    let pad = augment.crop_padding as i32;
    // Offsets of the crop window in the padded image, relative to the original's origin.
    let (dy, dx) = if pad > 0 {
        (
            rng.random_range(-pad..=pad) as isize,
            rng.random_range(-pad..=pad) as isize,
        )
    } else {
        (0, 0)
    };
    let flip = augment.flip && rng.random_bool(0.5);
    for ch in 0..c {
        // (v / 255 - mean) / std == v * scale + shift
        let scale = 1.0 / (255.0 * norm.std[ch]);
        let shift = -norm.mean[ch] / norm.std[ch];
        let plane_in = &src[ch * h * w..(ch + 1) * h * w];
        let plane_out = &mut dst[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            let sy = y as isize + dy;
            let row_out = &mut plane_out[y * w..(y + 1) * w];
            if sy < 0 || sy >= h as isize {
                // Zero padding in pixel space normalises to `shift`.
                row_out.fill(shift);
                continue;
            }
            let row_in = &plane_in[sy as usize * w..(sy as usize + 1) * w];
            for (x, out) in row_out.iter_mut().enumerate() {
                let xx = if flip { w - 1 - x } else { x };
                let sx = xx as isize + dx;
                *out = if sx < 0 || sx >= w as isize {
                    shift
                } else {
                    row_in[sx as usize] as f32 * scale + shift
                };
            }
        }
    }
    if augment.cutout > 0 {
        // Drawn after the crop and flip, so runs without cutout keep their random streams.
        let (sh, sw) = (augment.cutout.min(h), augment.cutout.min(w));
        let y0 = rng.random_range(0..=h - sh);
        let x0 = rng.random_range(0..=w - sw);
        for plane in dst[..c * h * w].chunks_exact_mut(h * w) {
            for row in plane[y0 * w..(y0 + sh) * w].chunks_exact_mut(w) {
                row[x0..x0 + sw].fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp() -> Vec<u8> {
        // 1 channel, 4x4, value = 10 * y + x
        (0..16).map(|i| (10 * (i / 4) + i % 4) as u8).collect()
    }

    #[test]
    fn no_augmentation_only_normalises() {
        let norm = Normalize {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let mut out = vec![0.0; 16];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        augment_into(&ramp(), [1, 4, 4], Augment::NONE, &norm, &mut rng, &mut out);
        for (o, v) in out.iter().zip(ramp()) {
            assert!((o - (v as f32 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
        }
    }

    #[test]
    fn flip_mirrors_rows() {
        let norm = Normalize::identity(1);
        let aug = Augment {
            crop_padding: 0,
            flip: true,
            cutout: 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut flipped, mut plain) = (0, 0);
        for _ in 0..200 {
            let mut out = vec![0.0; 16];
            augment_into(&ramp(), [1, 4, 4], aug, &norm, &mut rng, &mut out);
            let px = |y: usize, x: usize| (out[y * 4 + x] * 255.0).round() as u8;
            if px(0, 0) == 3 {
                flipped += 1;
                assert_eq!((px(2, 0), px(2, 3)), (23, 20));
            } else {
                plain += 1;
                assert_eq!((px(2, 0), px(2, 3)), (20, 23));
            }
        }
        // Both outcomes occur, about half the time each.
        assert!(
            flipped > 60 && plain > 60,
            "{flipped} flipped, {plain} plain"
        );
    }

    #[test]
    fn crop_shifts_content_and_pads_with_zero() {
        let norm = Normalize::identity(1);
        let aug = Augment {
            crop_padding: 2,
            flip: false,
            cutout: 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut offsets = std::collections::HashSet::new();
        for _ in 0..300 {
            let mut out = vec![0.0; 16];
            augment_into(&ramp(), [1, 4, 4], aug, &norm, &mut rng, &mut out);
            let px: Vec<i32> = out.iter().map(|v| (v * 255.0).round() as i32).collect();
            // Every pixel is either padding (0) or the ramp shifted by one common offset
            // (the ramp's own 0 at the origin is skipped with the padding).
            let mut offset = None;
            for y in 0..4 {
                for x in 0..4 {
                    let v = px[y * 4 + x];
                    if v == 0 {
                        continue;
                    }
                    let (sy, sx) = (v / 10, v % 10);
                    let d = (sy - y as i32, sx - x as i32);
                    assert!(offset.is_none() || offset == Some(d), "inconsistent shift");
                    offset = Some(d);
                }
            }
            if let Some((dy, dx)) = offset {
                assert!(dy.abs() <= 2 && dx.abs() <= 2);
                offsets.insert((dy, dx));
            }
        }
        // Many different shifts are drawn.
        assert!(
            offsets.len() >= 15,
            "only {} distinct shifts",
            offsets.len()
        );
    }

    #[test]
    fn cutout_zeroes_exactly_one_square_inside_the_image() {
        // 3 channels of 8x6 (h x w); mean and std chosen so that no pixel normalises to 0.
        let (c, h, w, size) = (3, 8, 6, 3);
        let src: Vec<u8> = (0..c * h * w).map(|i| (i % 200 + 20) as u8).collect();
        let norm = Normalize {
            mean: vec![0.01; c],
            std: vec![0.5; c],
        };
        let plain = {
            let mut out = vec![0.0; c * h * w];
            augment_into(
                &src,
                [c, h, w],
                Augment::NONE,
                &norm,
                &mut ChaCha8Rng::seed_from_u64(0),
                &mut out,
            );
            out
        };
        assert!(plain.iter().all(|v| *v != 0.0));
        let aug = Augment {
            crop_padding: 0,
            flip: false,
            cutout: size,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut corners = std::collections::HashSet::new();
        for _ in 0..400 {
            let mut out = vec![0.0; c * h * w];
            augment_into(&src, [c, h, w], aug, &norm, &mut rng, &mut out);
            // The zeroed pixels of each channel: the same size x size square, inside the image.
            let zeros: Vec<(usize, usize)> = (0..h * w)
                .filter(|i| out[*i] == 0.0)
                .map(|i| (i / w, i % w))
                .collect();
            assert_eq!(zeros.len(), size * size);
            let (y0, x0) = zeros[0];
            assert!(
                y0 + size <= h && x0 + size <= w,
                "square at ({y0}, {x0}) leaves the image"
            );
            let square =
                |y: usize, x: usize| (y0..y0 + size).contains(&y) && (x0..x0 + size).contains(&x);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let i = ch * h * w + y * w + x;
                        let expected = if square(y, x) { 0.0 } else { plain[i] };
                        assert_eq!(out[i], expected, "channel {ch} ({y}, {x})");
                    }
                }
            }
            corners.insert((y0, x0));
        }
        // Every position of the square occurs: (8 - 3 + 1) x (6 - 3 + 1).
        assert_eq!(corners.len(), 6 * 4);
    }
}
