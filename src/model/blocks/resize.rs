//! Input resizing in front of a backbone (`--resize N`): bilinear interpolation on the device,
//! so 32x32 CIFAR images can meet an ImageNet backbone at the resolution it was trained at.
//!
//! Resizing multiplies every conv's cost by `(N / 32)^2` (49x for 224), which is why it is a
//! choice rather than the default; the checkpoint still takes the dataset's image size.

use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::prelude::*;

/// Bilinear resize to a fixed square side, or nothing.
///
/// # Shapes
/// - input: `[batch, c, h, w]`
/// - output: `[batch, c, side, side]`, or the input unchanged
#[derive(Module, Debug)]
pub struct Resize {
    interpolate: Option<Interpolate2d>,
}

impl Resize {
    /// Resizes to `side` x `side` (half-pixel centres, as `F.interpolate(..., "bilinear")`),
    /// or passes through when `side` is `None`.
    pub fn new(side: Option<usize>) -> Self {
        Self {
            interpolate: side.map(|s| {
                Interpolate2dConfig::new()
                    .with_output_size(Some([s, s]))
                    .with_mode(InterpolateMode::Linear)
                    .with_align_corners(false)
                    .init()
            }),
        }
    }

    /// Resized images.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        match &self.interpolate {
            Some(i) => i.forward(images), // [batch, c, side, side]
            None => images,
        }
    }
}
