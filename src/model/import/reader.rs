//! Reading the tensors of a weight file: safetensors, or a PyTorch checkpoint (`torch.save`
//! ZIP archive, legacy pickle stream, or pre-1.0 TAR), told apart by their first bytes.
//!
//! Nothing in a file is executed: PyTorch pickles are parsed by burn-store's pickle reader,
//! which builds tensors from the opcodes it understands and refuses everything else; it never
//! imports or calls what a pickle names. Tensor bytes are read only when applied.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::pytorch_reader::PytorchReader;
use burn::store::{ModuleStore, SafetensorsStore, bridge};

use crate::error::{Error, IoContext, Result};

/// The container a weight file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Hugging Face safetensors.
    Safetensors,
    /// `torch.save` since PyTorch 1.6: a ZIP archive.
    PytorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)`: a stream of pickles.
    PytorchLegacy,
    /// `torch.save` before PyTorch 0.1.10: a TAR archive.
    PytorchTar,
}

/// Detects the container of `path` from its first bytes.
pub fn detect(path: &Path) -> Result<FileFormat> {
    let mut head = [0u8; 512];
    let mut file = std::fs::File::open(path).at(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).at(path)? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        return Ok(FileFormat::PytorchZip);
    }
    // A pickle starts with PROTO (0x80); the legacy format pickles a magic number first.
    if head.first() == Some(&0x80) {
        return Ok(FileFormat::PytorchLegacy);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(FileFormat::PytorchTar);
    }
    // safetensors: an 8-byte little-endian header length, then a JSON object.
    if head.len() > 8 && head[8] == b'{' {
        return Ok(FileFormat::Safetensors);
    }
    Err(Error::data(
        path,
        "is neither a safetensors file nor a PyTorch checkpoint (.pth/.pt: ZIP, legacy pickle or TAR)",
    ))
}

/// Prefixes that wrap a state dict in training checkpoints (`{"state_dict": ...}`,
/// `{"model": ...}`) or in `nn.DataParallel` (`module.`); stripped when every key has one.
const WRAPPERS: [&str; 5] = ["state_dict.", "model_state_dict.", "model.", "state_dict_ema.", "module."];

/// Every tensor in `path`, by name, with its format. Names are the file's, less a wrapper
/// prefix common to all of them.
pub fn read_tensors(path: &Path) -> Result<(FileFormat, BTreeMap<String, PackTensor>)> {
    if !path.is_file() {
        return Err(Error::data(path, "no such weight file"));
    }
    let format = detect(path)?;
    let mut tensors: BTreeMap<String, PackTensor> = match format {
        FileFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_tensors()
                .map_err(|e| Error::data(path, format!("cannot read as safetensors: {e}")))?
                .clone()
        }
        _ => PytorchReader::new(path)
            .map_err(|e| Error::data(path, format!("cannot read as a PyTorch checkpoint: {e}")))?
            .into_tensors()
            .into_iter()
            .map(|(name, t)| (name, bridge::from_pytorch(t)))
            .collect(),
    };
    if tensors.is_empty() {
        return Err(Error::data(path, "holds no tensors"));
    }
    loop {
        let Some(prefix) = WRAPPERS.iter().find(|p| tensors.keys().all(|k| k.starts_with(*p))) else {
            break;
        };
        tensors = tensors
            .into_iter()
            .map(|(k, mut t)| {
                let name = k[prefix.len()..].to_string();
                t.name = name.clone();
                (name, t)
            })
            .collect();
    }
    Ok((format, tensors))
}
