//! Experiment grids: (model x dataset x recipe x seed), each a normal training run in its own
//! run directory below one output folder.
//!
//! Running a grid again continues it: finished runs (`summary.json`) are skipped, interrupted
//! ones resumed from their newest checkpoint, the rest trained. Runs go one after another in
//! this process ([`train`](crate::train::train) serialises runs within a process anyway), or in
//! `jobs` parallel `visionnet train` processes. The grid file's format is in [`grid`].
//!
//! The output folder holds `experiment.json` ([`ExperimentManifest`]: which run directory is
//! which model, dataset, recipe, seed, and each model's twin, for the report), `logs/` (the
//! output of runs in child processes) and the run directories.

pub mod grid;
pub mod state;

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

pub use grid::{Grid, PlannedRun, Selection};
pub use state::RunState;

use super::metrics::{read_json, write_json};
use super::trainer::{RunEnd, RunOptions, resume, train};
use crate::error::{Error, IoContext, Result};

/// Name of the manifest in the output folder.
pub const MANIFEST: &str = "experiment.json";

/// How to carry a grid out.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// Output folder (default: the grid's `out`, else `runs/<grid file stem>`).
    pub out: Option<PathBuf>,
    /// Which runs of the grid.
    pub selection: Selection,
    /// Runs at once: 1 runs them in this process; more spawn `visionnet train` processes.
    pub jobs: usize,
    /// The `visionnet` executable for child processes (needed when `jobs > 1`).
    pub executable: Option<PathBuf>,
    /// CPU threads of each child process (default: this process's threads / jobs).
    pub threads_per_job: Option<usize>,
    /// Stop every run after this epoch, leaving it resumable.
    pub stop_after: Option<usize>,
    /// Stop at the first failed run instead of going on with the others.
    pub fail_fast: bool,
    /// Print only the grid's own lines, not each run's progress.
    pub quiet: bool,
    /// List the runs and their state; train nothing.
    pub dry_run: bool,
    /// Checkpoints kept per run.
    pub keep_checkpoints: usize,
}

impl Default for ExperimentOptions {
    fn default() -> Self {
        Self {
            out: None,
            selection: Selection::default(),
            jobs: 1,
            executable: None,
            threads_per_job: None,
            stop_after: None,
            fail_fast: false,
            quiet: false,
            dry_run: false,
            keep_checkpoints: 1,
        }
    }
}

/// A model of the grid, as the report needs it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelLabel {
    /// The grid's label.
    pub label: String,
    /// Registry name.
    pub model: String,
    /// The label of the model it is compared with.
    pub twin: Option<String>,
    /// The label of its compute-matched twin, if the grid asks for one (`match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
}

/// One run of the grid, as the report needs it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunLabel {
    /// `<dataset>/<recipe>/<model>/seed-<seed>`: its folder below the output folder.
    pub id: String,
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Model label.
    pub model: String,
    /// Seed.
    pub seed: u64,
}

/// `OUT/experiment.json`: the grid and its runs' labels.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExperimentManifest {
    /// The grid file.
    pub grid: String,
    /// Its text when the runs were last planned.
    pub grid_text: String,
    /// What the grid is for.
    pub description: Option<String>,
    /// Dataset labels in the grid's order.
    pub datasets: Vec<String>,
    /// Recipe labels in the grid's order.
    pub recipes: Vec<String>,
    /// Models in the grid's order.
    pub models: Vec<ModelLabel>,
    /// Every run planned so far (runs left out by a selection keep their earlier entries).
    pub runs: Vec<RunLabel>,
}

/// What happened to a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum RunOutcome {
    /// It was finished before: skipped.
    AlreadyFinished,
    /// Trained to the end (from scratch, or resumed after `from` epochs).
    Finished {
        /// Epochs it had when this invocation found it.
        from: usize,
        /// Its test accuracy.
        test_accuracy: f64,
    },
    /// Stopped by `stop_after`, resumable.
    Stopped {
        /// The epoch it stopped after.
        epoch: usize,
    },
    /// It failed; the message says why.
    Failed {
        /// The error.
        message: String,
    },
    /// Not attempted (dry run, or an earlier failure with `fail_fast`).
    NotRun {
        /// Its state on disk.
        state: RunState,
    },
}

/// The result of [`run_grid`].
#[derive(Clone, Debug)]
pub struct ExperimentOutcome {
    /// The output folder.
    pub out: PathBuf,
    /// Each planned run and what happened to it, in plan order.
    pub runs: Vec<(PlannedRun, RunOutcome)>,
}

impl ExperimentOutcome {
    /// The runs that failed.
    pub fn failures(&self) -> Vec<&(PlannedRun, RunOutcome)> {
        self.runs.iter().filter(|(_, o)| matches!(o, RunOutcome::Failed { .. })).collect()
    }
}

/// The output folder of a grid: `--out`, else the grid's `out`, else `runs/<file stem>`.
pub fn output_folder(grid: &Grid, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf).or_else(|| grid.out.clone()).unwrap_or_else(|| {
        let stem = grid.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "grid".into());
        PathBuf::from("runs").join(stem)
    })
}

/// Writes `experiment.json`, keeping the entries of runs planned before but not now.
fn write_manifest(out: &Path, grid: &Grid, runs: &[PlannedRun]) -> Result<()> {
    let path = out.join(MANIFEST);
    let mut labels: Vec<RunLabel> = runs
        .iter()
        .map(|r| RunLabel {
            id: r.id.clone(),
            dataset: r.dataset.clone(),
            recipe: r.recipe.clone(),
            model: r.model.clone(),
            seed: r.seed,
        })
        .collect();
    if path.is_file() {
        let before: ExperimentManifest = read_json(&path)?;
        let now: Vec<String> = labels.iter().map(|l| l.id.clone()).collect();
        let kept: Vec<RunLabel> = before.runs.into_iter().filter(|l| !now.contains(&l.id)).collect();
        labels.splice(0..0, kept);
    }
    let manifest = ExperimentManifest {
        grid: grid.path.display().to_string(),
        grid_text: grid.text.clone(),
        description: grid.description.clone(),
        datasets: grid.datasets.iter().map(|d| d.label.clone()).collect(),
        recipes: grid.recipes.iter().map(|r| r.label.clone()).collect(),
        models: grid
            .models
            .iter()
            .map(|m| ModelLabel {
                label: m.set.label.clone(),
                model: m.set.flags.iter().find(|(k, _)| k == "model").map(|(_, v)| v.clone()).unwrap_or_default(),
                twin: m.twin.clone(),
                matched: m.matched.clone(),
            })
            .collect(),
        runs: labels,
    };
    write_json(&path, &manifest)
}

/// Holds the output folder for this process (released when it exits, however it exits), so two
/// experiments never train the same run at once.
fn lock_out(out: &Path) -> Result<fs::File> {
    let path = out.join(".lock");
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).at(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::invalid(
            "--out",
            format!("another `visionnet experiment` is running in {}", out.display()),
        )),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// A line of the grid's own for the user (quiet or not: `quiet` silences the runs' per-epoch
/// progress only). Grid lines go to stderr like training progress.
fn say(line: &str) {
    eprintln!("{line}");
}

fn describe(state: RunState) -> String {
    match state {
        RunState::New => "new".to_string(),
        RunState::Partial { epoch } => format!("resuming after epoch {epoch}"),
        RunState::Finished => "finished".to_string(),
    }
}

/// Plans the grid in `grid_path`, checks every run up front, and carries out those not
/// finished. Failed runs do not stop the others (unless `fail_fast`); they are in the outcome.
pub fn run_grid(grid_path: &Path, options: &ExperimentOptions) -> Result<ExperimentOutcome> {
    let grid = Grid::load(grid_path)?;
    let out = output_folder(&grid, options.out.as_deref());
    let planned = grid.plan(&out, &options.selection)?;
    if planned.is_empty() {
        return Err(Error::invalid("--models/--datasets/--recipes/--seeds", "the selection keeps no run of the grid"));
    }
    // Every run's directory is checked before anything trains.
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for run in &planned {
        match state::inspect(run) {
            Ok(s) => states.push(s),
            Err(e) => {
                errors.push(e.to_string());
                states.push(RunState::New);
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid("--out", format!("run directories in {} do not fit the grid:\n  - {}", out.display(), errors.join("\n  - "))));
    }
    let jobs = options.jobs.max(1);
    if jobs > 1 && options.executable.is_none() && !options.dry_run {
        return Err(Error::invalid("--jobs", "parallel runs need the visionnet executable"));
    }
    let todo = states.iter().filter(|s| **s != RunState::Finished).count();
    say(&format!(
        "grid {}: {} runs in {} ({} finished, {} to do{})",
        grid_path.display(),
        planned.len(),
        out.display(),
        planned.len() - todo,
        todo,
        if jobs > 1 { format!(", {jobs} at a time") } else { String::new() }
    ));
    if options.dry_run {
        let runs = planned
            .into_iter()
            .zip(states)
            .map(|(r, s)| (r, if s == RunState::Finished { RunOutcome::AlreadyFinished } else { RunOutcome::NotRun { state: s } }))
            .collect();
        return Ok(ExperimentOutcome { out, runs });
    }

    fs::create_dir_all(&out).at(&out)?;
    let _lock = lock_out(&out)?;
    write_manifest(&out, &grid, &planned)?;

    let total = planned.len();
    let work: Vec<(usize, PlannedRun, RunState)> = planned.into_iter().zip(states).enumerate().map(|(i, (r, s))| (i, r, s)).collect();
    let results: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; total]);
    let queue: Mutex<VecDeque<&(usize, PlannedRun, RunState)>> = Mutex::new(work.iter().collect());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let threads = options
        .threads_per_job
        .unwrap_or_else(|| (rayon::current_num_threads() / jobs).max(1));

    let worker = || {
        loop {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let Some((i, run, state)) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                return;
            };
            let outcome = if *state == RunState::Finished {
                say(&format!("[{}/{total}] {}: already finished", i + 1, run.id));
                RunOutcome::AlreadyFinished
            } else {
                say(&format!("[{}/{total}] {}: {}", i + 1, run.id, describe(*state)));
                let started = Instant::now();
                let outcome = if jobs > 1 {
                    let exe = options.executable.as_deref().expect("checked above");
                    run_child(exe, threads, &out, run, *state, options)
                } else {
                    run_here(run, *state, options)
                };
                let took = started.elapsed().as_secs_f64();
                match &outcome {
                    RunOutcome::Finished { test_accuracy, .. } => {
                        say(&format!("[{}/{total}] {}: test accuracy {:.2}% ({took:.0} s)", i + 1, run.id, 100.0 * test_accuracy))
                    }
                    RunOutcome::Stopped { epoch } => say(&format!("[{}/{total}] {}: stopped after epoch {epoch}", i + 1, run.id)),
                    RunOutcome::Failed { message } => {
                        eprintln!("[{}/{total}] {}: FAILED: {message}", i + 1, run.id);
                        if options.fail_fast {
                            stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    _ => {}
                }
                outcome
            };
            results.lock().unwrap_or_else(|p| p.into_inner())[*i] = Some(outcome);
        }
    };
    if jobs == 1 {
        // In this thread: training keeps the main thread's large stack.
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(worker);
            }
        });
    }

    drop(queue);
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let runs = work
        .into_iter()
        .zip(results)
        .map(|((_, run, state), outcome)| (run, outcome.unwrap_or(RunOutcome::NotRun { state })))
        .collect();
    Ok(ExperimentOutcome { out, runs })
}

/// Trains or resumes `run` in this process.
fn run_here(run: &PlannedRun, state: RunState, options: &ExperimentOptions) -> RunOutcome {
    let run_options = RunOptions {
        stop_after: options.stop_after,
        quiet: options.quiet,
        keep_checkpoints: options.keep_checkpoints,
    };
    let (from, result) = match state {
        RunState::Partial { epoch } => (epoch, resume(&run.dir, &run_options)),
        _ => (0, state::clear_leftovers(&run.dir).and_then(|()| train(run.config.clone(), &run_options))),
    };
    match result {
        Ok(outcome) => match outcome.end {
            RunEnd::Finished(summary) => RunOutcome::Finished {
                from,
                test_accuracy: summary.test.accuracy,
            },
            RunEnd::Stopped(epoch) => RunOutcome::Stopped { epoch },
        },
        Err(e) => RunOutcome::Failed { message: e.to_string() },
    }
}

/// The log of a run trained in a child process: `OUT/logs/<id with / as __>.log`.
pub fn log_path(out: &Path, run: &PlannedRun) -> PathBuf {
    out.join("logs").join(format!("{}.log", run.id.replace('/', "__")))
}

/// Trains or resumes `run` in a `visionnet train` child process, its output in its log.
fn run_child(exe: &Path, threads: usize, out: &Path, run: &PlannedRun, state: RunState, options: &ExperimentOptions) -> RunOutcome {
    let attempt = || -> Result<RunOutcome> {
        let log = log_path(out, run);
        let logs = log.parent().expect("a file in logs/");
        fs::create_dir_all(logs).at(logs)?;
        let mut file = fs::OpenOptions::new().create(true).append(true).open(&log).at(&log)?;
        let mut command = Command::new(exe);
        command.args(["--threads", &threads.to_string(), "train", "--quiet"]);
        command.args(["--keep-checkpoints", &options.keep_checkpoints.to_string()]);
        if let Some(e) = options.stop_after {
            command.args(["--stop-after", &e.to_string()]);
        }
        let from = match state {
            RunState::Partial { epoch } => {
                command.arg("--resume").arg(&run.dir);
                epoch
            }
            _ => {
                state::clear_leftovers(&run.dir)?;
                command.args(&run.flags);
                0
            }
        };
        writeln!(file, "$ {} {}", exe.display(), command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")).at(&log)?;
        let status = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().at(&log)?)
            .stderr(file)
            .status()
            .map_err(|e| Error::io(exe, e))?;
        if !status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().filter(|l| !l.trim().is_empty()).take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Ok(RunOutcome::Failed {
                message: format!("{status}; {}: {}", log.display(), tail.join(" | ")),
            });
        }
        if run.dir.join("summary.json").is_file() {
            let summary: super::metrics::Summary = read_json(&run.dir.join("summary.json"))?;
            Ok(RunOutcome::Finished {
                from,
                test_accuracy: summary.test.accuracy,
            })
        } else {
            let epoch = match super::checkpoint::latest(&run.dir)? {
                Some(c) => super::checkpoint::read_meta(&c)?.epoch,
                None => 0,
            };
            Ok(RunOutcome::Stopped { epoch })
        }
    };
    attempt().unwrap_or_else(|e| RunOutcome::Failed { message: e.to_string() })
}
