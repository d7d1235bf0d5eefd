//! Reading the tensors of a weight file: safetensors, or a PyTorch checkpoint (`torch.save`
//! ZIP archive, legacy pickle stream, or pre-1.0 TAR), told apart by their first bytes.
//!
//! Nothing in a file is executed: PyTorch pickles are parsed by burn-store's pickle reader,
//! which builds tensors from the opcodes it understands; it never imports or calls what a
//! pickle names. Before that, [`super::pickle_scan`] refuses any pickle naming a global other
//! than the tensor-rebuild functions, or holding a self-referencing or too deeply nested
//! container. Tensor bytes are read only when applied.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::pytorch_reader::PytorchReader;
use burn::store::{ModuleStore, SafetensorsStore, bridge};

use super::pickle_scan;
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
const WRAPPERS: [&str; 5] = [
    "state_dict.",
    "model_state_dict.",
    "model.",
    "state_dict_ema.",
    "module.",
];

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
        _ => {
            guard_pickles(path, format)?;
            PytorchReader::new(path)
                .map_err(|e| {
                    Error::data(path, format!("cannot read as a PyTorch checkpoint: {e}"))
                })?
                .into_tensors()
                .into_iter()
                .map(|(name, t)| (name, bridge::from_pytorch(t)))
                .collect()
        }
    };
    if tensors.is_empty() {
        return Err(Error::data(path, "holds no tensors"));
    }
    while let Some(prefix) = WRAPPERS
        .iter()
        .find(|p| tensors.keys().all(|k| k.starts_with(*p)))
    {
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

/// The pickles of a PyTorch file, checked by [`pickle_scan`]: the legacy stream's pickles (a
/// plain pickle file has one), a ZIP archive's `data.pkl`, a TAR archive's `sys_info` and
/// `pickle` entries.
fn guard_pickles(path: &Path, format: FileFormat) -> Result<()> {
    let refuse = |r: pickle_scan::Refusal| Error::data(path, r.to_string());
    match format {
        FileFormat::PytorchLegacy => {
            // The pickles come first; the limit keeps a large file's storage bytes unread.
            let file = std::fs::File::open(path).at(path)?;
            let mut bytes = Vec::new();
            file.take(2 * MAX_PICKLE_BYTES)
                .read_to_end(&mut bytes)
                .at(path)?;
            // magic number, protocol, system info, the object, storage keys; raw storage
            // bytes follow the fifth. A plain pickle file ends after the first.
            let mut at = 0;
            for _ in 0..5 {
                at += pickle_scan::check(&bytes[at..]).map_err(refuse)?;
                if bytes.get(at) != Some(&0x80) {
                    break;
                }
            }
        }
        FileFormat::PytorchZip => {
            let file = std::fs::File::open(path).at(path)?;
            let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
                .map_err(|e| Error::data(path, format!("cannot read as a ZIP archive: {e}")))?;
            let names: Vec<String> = archive
                .file_names()
                .filter_map(|n| n.ok().map(|n| n.into_owned()))
                .filter(|n| n.ends_with("data.pkl"))
                .collect();
            if names.is_empty() {
                return Err(Error::data(
                    path,
                    "is a ZIP archive without a data.pkl: not a torch.save file",
                ));
            }
            for name in names {
                let entry = archive
                    .by_name(&name)
                    .map_err(|e| Error::data(path, format!("{name}: {e}")))?;
                let bytes = read_limited(entry, path, &name)?;
                pickle_scan::check(&bytes)
                    .map_err(|r| Error::data(path, format!("{name}: {r}")))?;
            }
        }
        FileFormat::PytorchTar => {
            let file = std::fs::File::open(path).at(path)?;
            let mut archive = tar::Archive::new(std::io::BufReader::new(file));
            let entries = archive
                .entries()
                .map_err(|e| Error::data(path, format!("cannot read as a TAR archive: {e}")))?;
            for entry in entries {
                let entry = entry
                    .map_err(|e| Error::data(path, format!("cannot read as a TAR archive: {e}")))?;
                let name = entry
                    .path()
                    .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
                    .unwrap_or_default();
                if name == "pickle" || name == "sys_info" {
                    let bytes = read_limited(entry, path, &name)?;
                    pickle_scan::check(&bytes)
                        .map_err(|r| Error::data(path, format!("{name}: {r}")))?;
                }
            }
        }
        FileFormat::Safetensors => {}
    }
    Ok(())
}

/// Largest pickle read for checking (burn-store refuses larger ones too).
const MAX_PICKLE_BYTES: u64 = 100 << 20;

fn read_limited(entry: impl Read, path: &Path, name: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_PICKLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .at(path)?;
    if bytes.len() as u64 > MAX_PICKLE_BYTES {
        return Err(Error::data(
            path,
            format!("{name}: a pickle over {MAX_PICKLE_BYTES} bytes; refused"),
        ));
    }
    Ok(bytes)
}
