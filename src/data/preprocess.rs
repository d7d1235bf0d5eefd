//! ImageNet-style evaluation preprocessing of a single photo: resize so the short side is
//! `resize` pixels (bilinear, with PIL's antialiasing when shrinking), then centre-crop a
//! `crop` x `crop` square, as torchvision's `Resize(256)` + `CenterCrop(224)` do.

use image::RgbImage;
use image::imageops::{self, FilterType};

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
    let resized = imageops::resize(image, nw, nh, FilterType::Triangle);
    // torchvision: offsets `int(round((size - crop) / 2))`.
    let top = ((nh - crop) as f64 / 2.0).round() as u32;
    let left = ((nw - crop) as f64 / 2.0).round() as u32;
    let plane = (crop * crop) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for y in 0..crop {
        for x in 0..crop {
            let px = resized.get_pixel(left + x, top + y);
            for c in 0..3 {
                chw[c * plane + (y * crop + x) as usize] = px[c];
            }
        }
    }
    chw
}
