//! Image files as visionnet's loader reads them (PNG, JPEG, BMP, PPM; format guessed from the
//! bytes; image's default limits, 512 MiB of allocation), converted to RGB.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format() else {
            return;
        };
        if let Ok(img) = reader.decode() {
            let _ = img.to_rgb8();
        }
    });
}
