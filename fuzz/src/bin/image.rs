//! Image files through the data loader's `read_rgb` (PNG, JPEG, BMP, PPM; image's allocation
//! limit, the size check, the resize), both size policies. `image::open` picks the decoder by
//! extension, so the input is staged under the extension of the format its bytes claim (PNG if
//! none), as a file from an image folder would be named.

use visionnet::data::image_file::{SizePolicy, read_rgb};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let name = match image::guess_format(data) {
            Ok(image::ImageFormat::Jpeg) => "image.jpg",
            Ok(image::ImageFormat::Bmp) => "image.bmp",
            Ok(image::ImageFormat::Pnm) => "image.ppm",
            _ => "image.png",
        };
        if let Some(path) = visionnet_fuzz::stage(name, data) {
            let _ = read_rgb(&path, [3, 32, 32], SizePolicy::Resize);
            let _ = read_rgb(&path, [3, 32, 32], SizePolicy::Refuse);
        }
    });
}
