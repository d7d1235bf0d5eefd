//! Single image files given on the command line (`predict`, `gradcam`): read as RGB and fitted
//! to a model's input size.

use std::path::Path;

use image::imageops::{self, FilterType};

use crate::error::{Error, Result};

/// An image file read for a model.
#[derive(Clone, Debug)]
pub struct ImageFile {
    /// `[3, height, width]` pixels, channel-major like [`super::ImageSet`].
    pub pixels: Vec<u8>,
    /// `(width, height)` of the file as stored.
    pub original_size: (u32, u32),
    /// Whether it was resized to the model's input size.
    pub resized: bool,
}

/// How to treat an image whose size differs from the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizePolicy {
    /// Resize it (bilinear), as `predict` and `gradcam` do by default.
    Resize,
    /// Refuse it with an error naming the file and both sizes.
    Refuse,
}

/// Reads `path` as RGB (greyscale and alpha are converted) for a model taking `[c, h, w]`
/// inputs. An image of another size is resized or refused according to `policy`.
pub fn read_rgb(path: &Path, [c, h, w]: [usize; 3], policy: SizePolicy) -> Result<ImageFile> {
    if c != 3 {
        return Err(Error::data(
            path,
            format!("the model takes {c}-channel images; only RGB images can be read"),
        ));
    }
    let image = image::open(path)
        .map_err(|e| Error::data(path, format!("cannot read the image: {e}")))?
        .to_rgb8();
    let original_size = image.dimensions();
    let resized = original_size != (w as u32, h as u32);
    if resized && policy == SizePolicy::Refuse {
        return Err(Error::data(
            path,
            format!(
                "is {}x{} pixels; the model takes {w}x{h}, and resizing is off (--no-resize)",
                original_size.0, original_size.1
            ),
        ));
    }
    let image = if resized {
        imageops::resize(&image, w as u32, h as u32, FilterType::Triangle)
    } else {
        image
    };
    let plane = h * w;
    let mut pixels = vec![0u8; 3 * plane];
    for (i, px) in image.pixels().enumerate() {
        for ch in 0..3 {
            pixels[ch * plane + i] = px[ch];
        }
    }
    Ok(ImageFile {
        pixels,
        original_size,
        resized,
    })
}
