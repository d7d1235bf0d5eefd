//! Heat maps for the eye: a map upsampled (bilinear) to the displayed size, coloured with a
//! colour map, and blended on the input image, itself upscaled since CIFAR images are 32x32.
//!
//! Bilinear upsampling with pixel centres aligned (as OpenCV's `resize` in the reference
//! Grad-CAM code) turns a 2x2 or 4x4 map into a smooth picture whose peak stays where the
//! map's largest value is.
//!
//! The blend is weighted by the map: a pixel whose map value is `t` in [0, 1] is
//! `(1 - a) * image + a * colour(t)` with `a = alpha * sqrt(t)`, so where the map is zero the
//! image shows unchanged and the evidence stands out in colour (a constant `a` would tint or, with
//! Turbo's dark low end, darken the whole picture).

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma, Rgb, RgbImage};

/// The colour map of heat maps (colours from d3-scale-chromatic, via `colorous`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// Google's Turbo: the jet-like rainbow of most Grad-CAM figures, without jet's flaws.
    Turbo,
    /// Perceptually uniform, dark purple to yellow.
    Viridis,
    /// Perceptually uniform, black to yellow through red.
    Inferno,
}

impl Colormap {
    fn gradient(self) -> colorous::Gradient {
        match self {
            Colormap::Turbo => colorous::TURBO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
        }
    }

    /// The colour of `t` in [0, 1] (clamped).
    pub fn color(self, t: f32) -> Rgb<u8> {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Rgb(self.gradient().eval_continuous(t as f64).into_array())
    }
}

/// How maps are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    /// Displayed pixels per input pixel.
    pub scale: u32,
    /// Weight of the heat map in the blend where the map is at its maximum (0: the image only,
    /// 1: the map only); lower values are blended with `alpha * sqrt(t)`.
    pub alpha: f32,
    /// Colour map.
    pub colormap: Colormap,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self {
            scale: 4,
            alpha: 0.5,
            colormap: Colormap::Turbo,
        }
    }
}

/// A channel-major `[3, h, w]` image as an RGB image.
pub fn rgb_image(pixels: &[u8], [c, h, w]: [usize; 3]) -> RgbImage {
    assert_eq!(c, 3, "RGB images only");
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        Rgb([pixels[i], pixels[plane + i], pixels[2 * plane + i]])
    })
}

/// A row-major `[h, w]` map resized to `width x height` by bilinear interpolation.
pub fn upsample(map: &[f32], [h, w]: [usize; 2], width: u32, height: u32) -> Vec<f32> {
    let source: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w as u32, h as u32, map.to_vec())
            .expect("the map holds h * w values");
    imageops::resize(&source, width, height, FilterType::Triangle).into_raw()
}

/// A row-major `[h, w]` map resized to `[height, width]` by bilinear interpolation with corners
/// aligned (torch's `UpsamplingBilinear2d`, `align_corners=True`): the corner values stay at the
/// corner pixels. ScoreCAM's masks are made this way, as in pytorch-grad-cam.
pub fn upsample_aligned(map: &[f32], [h, w]: [usize; 2], [height, width]: [usize; 2]) -> Vec<f32> {
    assert_eq!(map.len(), h * w, "the map holds h * w values");
    // Source coordinate of output index `i` along an axis of `n` -> `m` values.
    let source = |i: usize, n: usize, m: usize| -> (usize, usize, f32) {
        if m <= 1 || n <= 1 {
            return (0, 0, 0.0);
        }
        let x = i as f32 * (n - 1) as f32 / (m - 1) as f32;
        let lo = (x.floor() as usize).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        (lo, hi, x - lo as f32)
    };
    let mut out = Vec::with_capacity(height * width);
    for y in 0..height {
        let (y0, y1, ty) = source(y, h, height);
        for x in 0..width {
            let (x0, x1, tx) = source(x, w, width);
            let top = map[y0 * w + x0] * (1.0 - tx) + map[y0 * w + x1] * tx;
            let bottom = map[y1 * w + x0] * (1.0 - tx) + map[y1 * w + x1] * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// The input image upscaled `scale` times (bilinear, like the map).
pub fn upscale(image: &RgbImage, scale: u32) -> RgbImage {
    imageops::resize(
        image,
        image.width() * scale,
        image.height() * scale,
        FilterType::Triangle,
    )
}

/// A normalised `[h, w]` map blended on `image` (the model's input), upscaled by `style.scale`.
pub fn overlay(image: &RgbImage, map: &[f32], shape: [usize; 2], style: &OverlayStyle) -> RgbImage {
    let base = upscale(image, style.scale);
    let values = upsample(map, shape, base.width(), base.height());
    let alpha = style.alpha.clamp(0.0, 1.0);
    RgbImage::from_fn(base.width(), base.height(), |x, y| {
        let t = values[(y * base.width() + x) as usize].clamp(0.0, 1.0);
        let a = alpha * t.sqrt();
        let (p, q) = (base.get_pixel(x, y), style.colormap.color(t));
        Rgb(std::array::from_fn(|c| {
            ((1.0 - a) * p[c] as f32 + a * q[c] as f32).round() as u8
        }))
    })
}
