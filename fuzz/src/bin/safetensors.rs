//! safetensors files: the header and every tensor's bytes.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(file) = safetensors::SafeTensors::deserialize(data) {
            for (_, view) in file.tensors() {
                let _ = view.data().len();
            }
        }
    });
}
