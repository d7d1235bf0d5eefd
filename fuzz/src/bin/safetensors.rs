//! `.safetensors` weight files as `--pretrained` reads them (`read_tensors`).

use visionnet::model::import::read_tensors;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some(path) = visionnet_fuzz::stage("weights.safetensors", data) {
            let _ = read_tensors(&path);
        }
    });
}
