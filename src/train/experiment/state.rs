//! Where a planned run stands on disk: not started, interrupted (resumable), or finished; and
//! whether what is on disk is the run the grid asks for.

use std::fs;
use std::path::Path;

use super::grid::PlannedRun;
use crate::error::{Error, IoContext, Result};
use crate::io::read_json;
use crate::train::checkpoint;
use crate::train::manifest::RunManifest;

/// The state of a run directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum RunState {
    /// Nothing there yet: train it.
    New,
    /// Started and interrupted (or stopped): resume it after `epoch` completed epochs (0 when
    /// it died before its first checkpoint).
    Partial {
        /// Epochs in its newest checkpoint.
        epoch: usize,
    },
    /// `summary.json` is there: nothing to do.
    Finished,
}

/// Hidden temporary files that an atomic write killed half-way leaves behind (`.run.json.tmp`).
fn is_leftover(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Reads the state of `run`'s directory, checking that a run already there was configured as
/// the grid now configures it (so a changed grid never mixes two recipes under one name).
pub fn inspect(run: &PlannedRun) -> Result<RunState> {
    let dir = &run.dir;
    if !dir.exists() {
        return Ok(RunState::New);
    }
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "is a file where the grid puts a run directory",
        ));
    }
    let manifest_path = dir.join("run.json");
    if !manifest_path.is_file() {
        let mut others = Vec::new();
        for entry in fs::read_dir(dir).at(dir)? {
            let name = entry.at(dir)?.file_name().to_string_lossy().into_owned();
            if !crate::train::run_lock::is_bookkeeping(&name) {
                others.push(name);
            }
        }
        if others.is_empty() {
            return Ok(RunState::New);
        }
        return Err(Error::data(
            dir,
            format!(
                "holds {} but no run.json: not a run this grid can continue; move it away",
                others.join(", ")
            ),
        ));
    }
    let manifest: RunManifest = read_json(&manifest_path)?;
    let differences = config_differences(&manifest, run);
    if !differences.is_empty() {
        return Err(Error::data(
            dir,
            format!(
                "was trained with a configuration the grid no longer gives ({}); move the run away or choose another --out",
                differences.join(", ")
            ),
        ));
    }
    if dir.join("summary.json").is_file() {
        return Ok(RunState::Finished);
    }
    let epoch = match checkpoint::latest(dir)? {
        Some(ckpt) => checkpoint::read_meta(&ckpt)?.epoch,
        None => 0,
    };
    Ok(RunState::Partial { epoch })
}

/// `key: on disk -> grid` for every configuration key that differs (the run directory aside).
fn config_differences(manifest: &RunManifest, run: &PlannedRun) -> Vec<String> {
    let as_map = |c: &crate::train::TrainConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (stored, wanted) = (as_map(&manifest.config), as_map(&run.config));
    let mut keys: Vec<&String> = stored.keys().chain(wanted.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| k.as_str() != "run-dir")
        .filter_map(|k| {
            let (a, b) = (stored.get(k), wanted.get(k));
            (a != b).then(|| {
                let show = |v: Option<&serde_json::Value>| {
                    v.map_or("unset".to_string(), |v| v.to_string())
                };
                format!("{k}: {} there, {} in the grid", show(a), show(b))
            })
        })
        .collect()
}

/// Removes the leftovers of killed atomic writes so `train` finds the folder empty.
pub fn clear_leftovers(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if is_leftover(&entry.file_name().to_string_lossy()) && entry.path().is_file() {
            fs::remove_file(entry.path()).at(entry.path())?;
        }
    }
    Ok(())
}
