//! Where every run of a grid stands, whichever scheduler (or none) trains it: read from the
//! run folders and their locks, touching nothing.

use std::path::{Path, PathBuf};

use super::grid::{Grid, PlannedRun};
use super::state::{self, RunState};
use super::{ExperimentOptions, output_folder};
use crate::error::{Error, Result};
use crate::train::checkpoint;
use crate::train::run_lock::{self, Verdict};

/// The status of one run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// `summary.json` is there.
    Finished,
    /// A live process holds its lock.
    Running {
        /// Who: `pid 12 on host n1 (SLURM job 7_2, since ...)`.
        holder: String,
        /// Epochs in its newest checkpoint.
        epoch: usize,
    },
    /// Started and not running: its lock is stale, or it has `run.json` and no summary.
    Interrupted {
        /// Epochs in its newest checkpoint (where it resumes).
        epoch: usize,
        /// Why it counts as interrupted.
        why: String,
    },
    /// Not started.
    Pending,
    /// Its folder holds another run than the grid gives (the message names what differs).
    Conflict {
        /// What is wrong.
        message: String,
    },
}

impl RunStatus {
    /// `finished`, `running`, `interrupted`, `pending` or `conflict`.
    pub fn class(&self) -> &'static str {
        match self {
            RunStatus::Finished => "finished",
            RunStatus::Running { .. } => "running",
            RunStatus::Interrupted { .. } => "interrupted",
            RunStatus::Pending => "pending",
            RunStatus::Conflict { .. } => "conflict",
        }
    }
}

/// The status of a grid's runs, in the listing's order (a run's position is its task index).
#[derive(Clone, Debug)]
pub struct GridStatus {
    /// The output folder.
    pub out: PathBuf,
    /// Each run and its status.
    pub runs: Vec<(PlannedRun, RunStatus)>,
}

impl GridStatus {
    /// How many runs are in each class, in the order finished, running, interrupted, pending,
    /// conflict (classes with none left out).
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        ["finished", "running", "interrupted", "pending", "conflict"]
            .into_iter()
            .map(|c| (c, self.runs.iter().filter(|(_, s)| s.class() == c).count()))
            .filter(|(c, n)| *n > 0 || *c != "conflict")
            .collect()
    }
}

fn epochs_of(dir: &Path) -> usize {
    checkpoint::latest(dir)
        .ok()
        .flatten()
        .and_then(|c| checkpoint::read_meta(&c).ok())
        .map_or(0, |m| m.epoch)
}

/// The status of one planned run.
pub fn run_status(run: &PlannedRun) -> Result<RunStatus> {
    let on_disk = match state::inspect(run) {
        Ok(s) => s,
        Err(e) => {
            return Ok(RunStatus::Conflict {
                message: e.to_string(),
            });
        }
    };
    if on_disk == RunState::Finished {
        return Ok(RunStatus::Finished);
    }
    let epoch = epochs_of(&run.dir);
    match run_lock::inspect(&run.dir)? {
        Some(found) => Ok(match found.verdict {
            Verdict::Live => RunStatus::Running {
                holder: found.holder.map_or_else(
                    || "a process (its lock is being written)".to_string(),
                    |h| h.describe(),
                ),
                epoch,
            },
            Verdict::Stale(why) => RunStatus::Interrupted {
                epoch,
                why: match found.holder {
                    Some(h) => format!("stale lock of {}: {why}", h.describe()),
                    None => format!("stale lock: {why}"),
                },
            },
        }),
        None => Ok(match on_disk {
            RunState::Partial { epoch } => RunStatus::Interrupted {
                epoch,
                why: "run.json without summary.json".to_string(),
            },
            _ => RunStatus::Pending,
        }),
    }
}

/// The status of every run of the grid in `grid_path` (as selected).
pub fn grid_status(grid_path: &Path, options: &ExperimentOptions) -> Result<GridStatus> {
    let grid = Grid::load(grid_path)?;
    let out = output_folder(&grid, options.out.as_deref());
    let planned = grid.plan(&out, &options.selection)?;
    if planned.is_empty() {
        return Err(Error::invalid(
            "--models/--datasets/--recipes/--seeds",
            "the selection keeps no run of the grid",
        ));
    }
    let mut runs = Vec::new();
    for run in planned {
        let status = run_status(&run)?;
        runs.push((run, status));
    }
    Ok(GridStatus { out, runs })
}
