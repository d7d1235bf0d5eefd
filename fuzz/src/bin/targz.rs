//! `.tar.gz` archives as `data fetch` unpacks them: every entry's path, type and bytes (read,
//! not written; at most 64 MiB per entry).

use std::io::Read;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data));
        let Ok(entries) = archive.entries() else { return };
        for entry in entries {
            let Ok(entry) = entry else { break };
            let _ = entry.path().map(|p| p.components().count());
            let _ = entry.header().entry_type();
            let mut sink = Vec::new();
            if entry.take(64 << 20).read_to_end(&mut sink).is_err() {
                break;
            }
        }
    });
}
