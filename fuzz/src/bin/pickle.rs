//! PyTorch `.pth` / `.pt` files (ZIP, legacy pickle stream, TAR, plain pickle) as `--pretrained`
//! reads them: the pickle safety scan, then `read_tensors` (scan, burn-store's reader, every
//! tensor's bytes).

use visionnet::model::import::{pickle_scan, read_tensors};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = pickle_scan::check_stream(data, 5);
        if let Some(path) = visionnet_fuzz::stage("weights.pth", data) {
            let _ = read_tensors(&path);
        }
    });
}
