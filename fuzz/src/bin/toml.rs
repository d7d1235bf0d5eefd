//! TOML configs and grid files.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = toml::from_str::<toml::Table>(text);
        }
    });
}
