//! PyTorch `.pth` / `.pt` files (ZIP, legacy pickle stream, TAR, plain pickle): visionnet's
//! pickle safety scan (the module itself, compiled in) and then burn-store's reader, as
//! `--pretrained` runs them.

#[path = "../../../src/model/import/pickle_scan.rs"]
#[allow(dead_code)]
mod pickle_scan;

fn main() {
    let path = std::env::temp_dir().join(format!("visionnet-fuzz-{}.pth", std::process::id()));
    afl::fuzz!(|data: &[u8]| {
        let _ = pickle_scan::check_stream(data, 5);
        if std::fs::write(&path, data).is_ok() {
            if let Ok(reader) = pytorch_reader::PytorchReader::new(&path) {
                for tensor in reader.tensors().values() {
                    let _ = tensor.read();
                }
            }
        }
    });
}
