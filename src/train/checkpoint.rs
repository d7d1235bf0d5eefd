//! Checkpoints: everything needed to continue a run or use its model.
//!
//! `RUN_DIR/checkpoints/epoch-NNNN/` holds `model.bpk` (weights and BatchNorm statistics,
//! burnpack), `optimizer.bpk` (optimizer state), `meta.json` ([`CheckpointMeta`]) and, when
//! the run keeps them, `ema.bpk` (the moving average of the weights, `--ema`) and
//! `lookahead.bpk` (lookahead's slow weights), models of the same layout as `model.bpk`. A
//! checkpoint is written to a hidden temporary folder and renamed into place, so a folder named
//! `epoch-NNNN` is always complete; older checkpoints are removed only after the new one is in
//! place.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Device;

use crate::data::Normalize;
use crate::error::{Error, IoContext, Result};
use crate::io::{read_json, write_json};
use crate::model::table::network_config;
use crate::model::{ImageClassifierConfig, ModelSpec, Network};

/// Version of the checkpoint layout; bumped when it changes incompatibly.
///
/// - 1: the first layout.
/// - 2: the study's CNN became stages of conv units whose conv is one of several kinds
///   (`convs.N.conv.Plain.weight` where layout 1 had `convs.N.conv.weight`) with lateral
///   connections and attention beside them. A layout-1 checkpoint loads in a build of its own
///   commit (`run.json` names it).
pub const FORMAT_VERSION: u32 = 2;

/// `meta.json`: what the weights are and where the run stood.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: usize,
    /// The model and its options.
    pub model: ModelSpec,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// `[channels, height, width]` the model takes.
    pub input_shape: [usize; 3],
    /// The normalisation the model was trained with.
    pub normalize: Normalize,
    /// The run's seed (with the epoch, it fixes every random draw still to come).
    pub seed: u64,
    /// Set when the checkpoint was taken inside epoch `epoch + 1` (a stop by SIGINT / SIGTERM):
    /// how far that epoch got, so `--resume` continues from its next batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// An epoch interrupted after `batches` of its batches, with its running sums.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartialEpoch {
    pub batches: usize,
    pub loss_sum: f64,
    pub correct: i64,
    pub seen: usize,
    pub seconds: f64,
}

/// The checkpoint folder of the run in `run_dir` for `meta`: `epoch-NNNN` after epoch NNNN,
/// `epoch-NNNN+BBBBBB` after BBBBBB batches of the epoch that follows.
fn checkpoint_name(meta: &CheckpointMeta) -> String {
    match &meta.partial {
        None => format!("epoch-{:04}", meta.epoch),
        Some(p) => format!("epoch-{:04}+{:06}", meta.epoch, p.batches),
    }
}

/// `(epoch, batches into the next epoch)` of a checkpoint folder name.
fn parse_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("epoch-")?;
    match rest.split_once('+') {
        None => Some((rest.parse().ok()?, 0)),
        Some((e, b)) => Some((e.parse().ok()?, b.parse().ok()?)),
    }
}

/// Every complete checkpoint of a run, oldest first (a partial one after its epoch's).
pub fn list(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = run_dir.join("checkpoints");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).at(&dir)? {
        let path = entry.at(&dir)?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(key) = parse_name(&name)
            && path.join("meta.json").is_file()
        {
            found.push((key, path));
        }
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|((epoch, _), path)| (epoch, path))
        .collect())
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(run_dir)?.pop().map(|(_, p)| p))
}

/// The moving average of the weights in a checkpoint (`--ema`).
pub const EMA_FILE: &str = "ema.bpk";
/// Lookahead's slow weights in a checkpoint.
pub const LOOKAHEAD_FILE: &str = "lookahead.bpk";

/// Writes a record, serialised by burn in memory, to `path` with std's own I/O: a full disk is
/// then an I/O error of its kind (`StorageFull`, worded by [`Error::Io`]), where burn's file
/// writer would only have put "os error 28" inside its message.
fn write_record<E: std::fmt::Display>(
    path: &Path,
    bytes: std::result::Result<burn::tensor::Bytes, E>,
) -> Result<()> {
    let bytes = bytes.map_err(|e| Error::checkpoint(path, e.to_string()))?;
    fs::write(path, &bytes[..]).at(path)
}

/// Writes a checkpoint of `model` and `optimizer` for `meta.epoch`, with the further models of
/// `extra` (`(file name, model)`: [`EMA_FILE`], [`LOOKAHEAD_FILE`]), then keeps only the newest
/// `keep` checkpoints. Returns the checkpoint folder.
pub fn save(
    run_dir: &Path,
    meta: &CheckpointMeta,
    model: &Network,
    optimizer: &ModuleOptimizer,
    extra: &[(&str, &Network)],
    keep: usize,
) -> Result<PathBuf> {
    let name = checkpoint_name(meta);
    let final_dir = run_dir.join("checkpoints").join(&name);
    let tmp = run_dir.join("checkpoints").join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    fs::create_dir_all(&tmp).at(&tmp)?;
    // burn's BatchNorm keeps its running statistics' newest update pending (per thread) until a
    // sync, and a record reads only the synced value: without this, a checkpoint taken between
    // two steps (a signal mid-epoch) would lose the last step's update, and the resumed run's
    // statistics would differ. `valid()` syncs the shared state; its copy is dropped.
    drop(model.valid());
    write_record(
        &tmp.join("model.bpk"),
        model.clone().into_record().into_bytes(),
    )?;
    for (file, extra_model) in extra {
        write_record(
            &tmp.join(file),
            (*extra_model).clone().into_record().into_bytes(),
        )?;
    }
    write_record(&tmp.join("optimizer.bpk"), optimizer.into_bytes())?;
    write_json(&tmp.join("meta.json"), meta)?;
    let files = ["model.bpk", "optimizer.bpk"]
        .into_iter()
        .chain(extra.iter().map(|(f, _)| *f));
    for file in files {
        let path = tmp.join(file);
        fs::File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
    }
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).at(&final_dir)?;
    }
    fs::rename(&tmp, &final_dir).at(&final_dir)?;
    let all = list(run_dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        fs::remove_dir_all(old).at(old)?;
    }
    Ok(final_dir)
}

/// The checkpoint folder `path` names: a checkpoint folder itself, or a run folder (its newest
/// checkpoint).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(Error::checkpoint(path, "no such file or directory"));
    }
    if path.join("meta.json").is_file() {
        return Ok(path.to_path_buf());
    }
    latest(path)?.ok_or_else(|| {
        Error::checkpoint(
            path,
            "neither a checkpoint folder (meta.json, model.bpk) nor a run folder with checkpoints/",
        )
    })
}

/// Reads a checkpoint's `meta.json`.
pub fn read_meta(checkpoint: &Path) -> Result<CheckpointMeta> {
    let path = checkpoint.join("meta.json");
    let meta: CheckpointMeta =
        read_json(&path).map_err(|e| Error::checkpoint(checkpoint, e.to_string()))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(Error::checkpoint(
            checkpoint,
            format!(
                "layout version {} (this build reads {FORMAT_VERSION}); use a build of the commit in the run's run.json",
                meta.format_version
            ),
        ));
    }
    Ok(meta)
}

/// Loads the weights of `checkpoint` into `model`, which must be the same architecture.
pub fn load_weights(checkpoint: &Path, model: Network) -> Result<Network> {
    load_model_file(checkpoint, "model.bpk", model)
}

/// Loads the model file `file` of `checkpoint` ([`EMA_FILE`], [`LOOKAHEAD_FILE`]) into
/// `model`, which must be the same architecture.
pub fn load_model_file(checkpoint: &Path, file: &str, model: Network) -> Result<Network> {
    let path = checkpoint.join(file);
    if !path.is_file() {
        return Err(Error::checkpoint(
            &path,
            "missing: the run's configuration needs it",
        ));
    }
    let record = ModuleRecord::load(&path).map_err(|e| Error::checkpoint(&path, e.to_string()))?;
    model.try_load_record(record).map_err(|e| {
        Error::checkpoint(
            &path,
            format!("the weights do not fit this model (a checkpoint of another model?): {e}"),
        )
    })
}

/// Loads the optimizer state of `checkpoint` into `optimizer`.
pub fn load_optimizer(checkpoint: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = checkpoint.join("optimizer.bpk");
    optimizer
        .load(&path)
        .map_err(|e| Error::checkpoint(&path, e.to_string()))
}

/// Builds the model a checkpoint describes and loads its weights (the moving average when the
/// checkpoint holds one), for inference.
pub fn load_model(path: &Path, device: &Device) -> Result<(PathBuf, CheckpointMeta, Network)> {
    let checkpoint = resolve(path)?;
    let meta = read_meta(&checkpoint)?;
    let config = network_config(&meta.model, meta.classes.len(), meta.input_shape)
        .map_err(|e| Error::checkpoint(&checkpoint, e.to_string()))?;
    // A run with --ema was evaluated with its averaged weights: they are its model.
    let file = if checkpoint.join(EMA_FILE).is_file() {
        EMA_FILE
    } else {
        "model.bpk"
    };
    let model = load_model_file(&checkpoint, file, config.init(device)?)?;
    Ok((checkpoint, meta, model))
}

/// Checks that a checkpoint was taken from `expected`, before its weights are loaded.
pub fn check_model(checkpoint: &Path, meta: &CheckpointMeta, expected: &ModelSpec) -> Result<()> {
    if &meta.model != expected {
        return Err(Error::checkpoint(
            checkpoint,
            format!(
                "it holds model '{}' with {:?}, not '{}' with {:?}",
                meta.model.name, meta.model.options, expected.name, expected.options
            ),
        ));
    }
    Ok(())
}
