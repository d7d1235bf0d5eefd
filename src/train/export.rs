//! `visionnet export`: a checkpoint's weights and BatchNorm statistics as a safetensors file
//! under the reference implementation's names (`bench/pytorch_reference.py`'s `Net` for the
//! study's CNN and attention models; torchvision, timm and lukemelas names for the baselines:
//! the tables `--pretrained` imports with), plus a JSON sidecar (`FILE.json`) with the model,
//! its options, classes, input shape and normalisation.
//!
//! PyTorch layouts are written: Linear weights `[out, in]`, BatchNorm `weight` / `bias`, and a
//! `num_batches_tracked` counter (int64, the checkpoint's optimizer steps) per BatchNorm, so
//! `load_state_dict(..., strict=True)` accepts the file. Written to a temporary file and renamed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::Device;

use super::checkpoint;
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::io::{write_atomic, write_json};
use crate::model::ModelSpec;
use crate::model::import::reference_names;
use crate::model::table::network_config;

/// The JSON sidecar of an export.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSidecar {
    /// The model and its options.
    pub model: ModelSpec,
    /// The naming the tensors are under.
    pub naming: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// `[channels, height, width]` the model takes.
    pub input_shape: [usize; 3],
    /// The normalisation the model was trained with.
    pub normalize: Normalize,
    /// The checkpoint exported, and its epoch.
    pub checkpoint: PathBuf,
    pub epoch: usize,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub file: PathBuf,
    pub sidecar: PathBuf,
    pub tensors: usize,
    pub naming: String,
}

/// One tensor to write: dtype tag, shape, little-endian bytes.
type Entry = (&'static str, Vec<usize>, Vec<u8>);

/// Exports the checkpoint (or a run folder's newest) `path` to the safetensors file `to`.
pub fn export(path: &Path, to: &Path, device: &Device) -> Result<ExportReport> {
    if to.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(Error::invalid(
            "--to",
            format!("{}: the export is a .safetensors file", to.display()),
        ));
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::error::check_output_dir(parent, "--to")?;
    }
    let (ckpt, meta, network) = checkpoint::load_model(path, device)?;
    let config = network_config(&meta.model, meta.classes.len(), meta.input_shape)
        .map_err(|e| Error::checkpoint(&ckpt, e.to_string()))?;
    let (naming, names, norms) = reference_names(&config)?;
    let snapshots: BTreeMap<String, _> = network
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (file_name, module_path, linear_weight) in names {
        let snapshot = snapshots.get(&module_path).ok_or_else(|| {
            Error::checkpoint(
                &ckpt,
                format!(
                    "internal: the {naming} table names '{module_path}', which the model lacks"
                ),
            )
        })?;
        let data = bridge::to_data(snapshot)
            .map_err(|e| Error::checkpoint(&ckpt, format!("{module_path}: {e}")))?
            .convert::<f32>();
        let mut shape = data.shape().to_vec();
        let mut values = data
            .try_into_vec::<f32>()
            .map_err(|e| Error::checkpoint(&ckpt, format!("{module_path}: {e:?}")))?;
        if linear_weight && shape.len() == 2 {
            // burn keeps Linear weights as [in, out]; PyTorch as [out, in].
            let (rows, cols) = (shape[0], shape[1]);
            let mut t = vec![0.0f32; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = values[r * cols + c];
                }
            }
            values = t;
            shape = vec![cols, rows];
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        entries.insert(file_name, ("F32", shape, bytes));
    }
    for norm in norms {
        entries.insert(
            format!("{norm}.num_batches_tracked"),
            ("I64", vec![], (meta.step as i64).to_le_bytes().to_vec()),
        );
    }
    let tensors = entries.len();
    write_atomic(to, &safetensors_bytes(&entries))?;
    let sidecar_path = PathBuf::from(format!("{}.json", to.display()));
    let sidecar = ExportSidecar {
        model: meta.model.clone(),
        naming: naming.to_string(),
        classes: meta.classes.clone(),
        input_shape: meta.input_shape,
        normalize: meta.normalize.clone(),
        checkpoint: ckpt.clone(),
        epoch: meta.epoch,
    };
    write_json(&sidecar_path, &sidecar)?;
    Ok(ExportReport {
        file: to.to_path_buf(),
        sidecar: sidecar_path,
        tensors,
        naming: naming.to_string(),
    })
}

/// A safetensors file: an 8-byte little-endian header length, the JSON header (names in
/// sorted order with dtype, shape and byte offsets), then the tensors' bytes.
fn safetensors_bytes(entries: &BTreeMap<String, Entry>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, (dtype, shape, bytes)) in entries {
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()] }),
        );
        offset += bytes.len();
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, bytes) in entries.values() {
        out.extend_from_slice(bytes);
    }
    out
}
