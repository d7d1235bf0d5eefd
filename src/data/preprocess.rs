//! ImageNet-style evaluation preprocessing of a single photo: resize so the short side is
//! `resize` pixels, then centre-crop a `crop` x `crop` square, as torchvision's `Resize(256)` +
//! `CenterCrop(224)` do on a PIL image.
//!
//! The resize is PIL's bilinear filter (`Image.resize(..., BILINEAR)`, which torchvision calls
//! for PIL images), reproduced to the byte: a triangle filter widened by the scale when shrinking
//! (antialiasing), coefficients in 22-bit fixed point, the horizontal pass first and its result
//! rounded to bytes before the vertical pass. With it, the shared cat photo's input equals the
//! reference input PyTorch was given exactly (a float resize differs by up to a few levels).

use image::RgbImage;

/// PIL's `PRECISION_BITS` for 8-bit images: `32 - 8 - 2`.
const PRECISION_BITS: u32 = 22;

/// For each output position: the first input index, and the fixed-point weights of the inputs
/// from there (PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`, bilinear filter).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter's support is 1
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) truncates toward zero; both values are > -1 here, so clamp at 0 is
            // what PIL's `if (xmin < 0) xmin = 0` gives.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let v = w * (1u32 << PRECISION_BITS) as f64;
                    if v < 0.0 {
                        (-0.5 + v) as i32
                    } else {
                        (0.5 + v) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// PIL's `clip8`: a fixed-point sum to a byte.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples interleaved RGB `src` (`w` x `h`) along x to width `nw`.
fn horizontal(src: &[u8], w: usize, h: usize, nw: usize) -> Vec<u8> {
    let coeffs = coefficients(w, nw);
    let mut out = vec![0u8; nw * h * 3];
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        for (xx, (xmin, k)) in coeffs.iter().enumerate() {
            for c in 0..3 {
                let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &kw) in k.iter().enumerate() {
                    sum += row[(xmin + i) * 3 + c] as i64 * kw as i64;
                }
                out[(y * nw + xx) * 3 + c] = clip8(sum);
            }
        }
    }
    out
}

/// Resamples interleaved RGB `src` (`w` x `h`) along y to height `nh`.
fn vertical(src: &[u8], w: usize, h: usize, nh: usize) -> Vec<u8> {
    let coeffs = coefficients(h, nh);
    let mut out = vec![0u8; w * nh * 3];
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..w * 3 {
            let mut sum: i64 = 1 << (PRECISION_BITS - 1);
            for (i, &kw) in k.iter().enumerate() {
                sum += src[(ymin + i) * w * 3 + x] as i64 * kw as i64;
            }
            out[yy * w * 3 + x] = clip8(sum);
        }
    }
    out
}

/// `image` resized to `nw` x `nh` with PIL's bilinear filter: interleaved RGB bytes.
pub fn resize_bilinear_pil(image: &RgbImage, nw: u32, nh: u32) -> Vec<u8> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (nw, nh) = (nw as usize, nh as usize);
    let mut pixels = image.as_raw().clone();
    let mut width = w;
    // PIL skips a pass whose size does not change.
    if nw != w {
        pixels = horizontal(&pixels, w, h, nw);
        width = nw;
    }
    if nh != h {
        pixels = vertical(&pixels, width, h, nh);
    }
    pixels
}

/// `[3, crop, crop]` channel-major `u8` pixels of `image`, short side resized to `resize`, then
/// centre-cropped (`crop <= resize`).
pub fn resize_center_crop(image: &RgbImage, resize: u32, crop: u32) -> Vec<u8> {
    let (w, h) = image.dimensions();
    // torchvision: the short side becomes `resize`, the long side `int(resize * long / short)`.
    let (nw, nh) = if w <= h {
        (resize, (resize as u64 * h as u64 / w as u64) as u32)
    } else {
        ((resize as u64 * w as u64 / h as u64) as u32, resize)
    };
    let resized = resize_bilinear_pil(image, nw, nh);
    // torchvision: offsets `int(round((size - crop) / 2))`, Python rounding half to even.
    let top = ((nh - crop) as f64 / 2.0).round_ties_even() as u32;
    let left = ((nw - crop) as f64 / 2.0).round_ties_even() as u32;
    let plane = (crop * crop) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for y in 0..crop {
        for x in 0..crop {
            let at = (((top + y) * nw + left + x) * 3) as usize;
            for c in 0..3 {
                chw[c * plane + (y * crop + x) as usize] = resized[at + c];
            }
        }
    }
    chw
}
