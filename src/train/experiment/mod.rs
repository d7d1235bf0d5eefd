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
//!
//! Any number of processes may work in one output folder at once (a local grid, the tasks of a
//! cluster's job array: [`run_task`], [`cluster`]): each run folder has its own lock
//! ([`run_lock`](crate::train::run_lock)), so a run is trained by one process at a time and a
//! run another process holds is left to it. `experiment.json` is rewritten under a lock of its
//! own (`OUT/.experiment.lock`), by whoever plans runs; every writer of one grid and selection
//! writes the same content.

pub mod cluster;
pub mod grid;
pub mod state;
pub mod status;

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use grid::{Grid, PlannedRun, Selection};
pub use state::RunState;

use super::interrupt;
use super::run_lock::{self, Acquired};
use super::trainer::{RunEnd, RunOptions, resume, train};
use crate::device::DeviceSlot;
use crate::error::{Error, IoContext, Result};
use crate::io::{read_json, write_json};

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
    /// One device per job (`wgpu:0`, `cuda:1`): job J trains its runs on `devices[J]`. Empty:
    /// each run's configured device, index 0.
    pub devices: Vec<DeviceSlot>,
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
            devices: Vec::new(),
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
    /// Another process holds the run's lock: left to it.
    Busy {
        /// Who holds it.
        holder: String,
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
        self.runs
            .iter()
            .filter(|(_, o)| matches!(o, RunOutcome::Failed { .. }))
            .collect()
    }
}

/// The output folder of a grid: `--out`, else the grid's `out`, else `runs/<file stem>`.
pub fn output_folder(grid: &Grid, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf)
        .or_else(|| grid.out.clone())
        .unwrap_or_else(|| {
            let stem = grid
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "grid".into());
            PathBuf::from("runs").join(stem)
        })
}

/// Writes `experiment.json`, keeping the entries of runs planned before but not now. Under
/// `OUT/.experiment.lock` (a `flock` held while it reads and writes), so that processes of one
/// output folder never interleave their read-merge-writes.
pub(crate) fn write_manifest(out: &Path, grid: &Grid, runs: &[PlannedRun]) -> Result<()> {
    let lock_path = out.join(".experiment.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .at(&lock_path)?;
    match lock.lock() {
        Ok(()) => {}
        // No flock on this file system: the write is still atomic, only not serialised.
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
        Err(e) => return Err(Error::io(&lock_path, e)),
    }
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
        let kept: Vec<RunLabel> = before
            .runs
            .into_iter()
            .filter(|l| !now.contains(&l.id))
            .collect();
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
                model: m
                    .set
                    .flags
                    .iter()
                    .find(|(k, _)| k == "model")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                twin: m.twin.clone(),
                matched: m.matched.clone(),
            })
            .collect(),
        runs: labels,
    };
    write_json(&path, &manifest)
}

/// Reads the state of every planned run, or one error naming each run folder that does not fit
/// the grid (checked before anything runs).
pub(crate) fn inspect_all(planned: &[PlannedRun], out: &Path) -> Result<Vec<RunState>> {
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for run in planned {
        match state::inspect(run) {
            Ok(s) => states.push(s),
            Err(e) => {
                errors.push(e.to_string());
                states.push(RunState::New);
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(
            "--out",
            format!(
                "run directories in {} do not fit the grid:\n  - {}",
                out.display(),
                errors.join("\n  - ")
            ),
        ));
    }
    Ok(states)
}

/// Checks `--devices` against the jobs and the runs: one device per job, of the backend every
/// run computes on.
fn check_devices(devices: &[DeviceSlot], jobs: usize, planned: &[PlannedRun]) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    if devices.len() != jobs {
        return Err(Error::invalid(
            "--devices",
            format!(
                "{} devices for {jobs} jobs: give one device per job (--jobs {0})",
                devices.len()
            ),
        ));
    }
    for (i, d) in devices.iter().enumerate() {
        if devices[..i].contains(d) {
            return Err(Error::invalid(
                "--devices",
                format!("{d} is listed twice; each job gets its own device"),
            ));
        }
    }
    for run in planned {
        if let Some(d) = devices.iter().find(|d| d.kind != run.config.device) {
            return Err(Error::invalid(
                "--devices",
                format!(
                    "{d} is a {:?} device, but run {} computes on {:?} (set `device = \"{}\"` in the grid's [defaults])",
                    d.kind,
                    run.id,
                    run.config.device,
                    format!("{:?}", d.kind).to_lowercase()
                ),
            ));
        }
    }
    Ok(())
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
        return Err(Error::invalid(
            "--models/--datasets/--recipes/--seeds",
            "the selection keeps no run of the grid",
        ));
    }
    // Every run's directory is checked before anything trains.
    let states = inspect_all(&planned, &out)?;
    let jobs = options.jobs.max(1);
    if jobs > 1 && options.executable.is_none() && !options.dry_run {
        return Err(Error::invalid(
            "--jobs",
            "parallel runs need the visionnet executable",
        ));
    }
    check_devices(&options.devices, jobs, &planned)?;
    let todo = states.iter().filter(|s| **s != RunState::Finished).count();
    say(&format!(
        "grid {}: {} runs in {} ({} finished, {} to do{})",
        grid_path.display(),
        planned.len(),
        out.display(),
        planned.len() - todo,
        todo,
        if jobs > 1 {
            format!(", {jobs} at a time")
        } else {
            String::new()
        }
    ));
    if options.dry_run {
        let runs = planned
            .into_iter()
            .zip(states)
            .map(|(r, s)| {
                (
                    r,
                    if s == RunState::Finished {
                        RunOutcome::AlreadyFinished
                    } else {
                        RunOutcome::NotRun { state: s }
                    },
                )
            })
            .collect();
        return Ok(ExperimentOutcome { out, runs });
    }

    fs::create_dir_all(&out).at(&out)?;
    write_manifest(&out, &grid, &planned)?;
    if jobs == 1
        && let Some(d) = options.devices.first()
    {
        crate::device::use_index(d.index)?;
    }

    let total = planned.len();
    let work: Vec<(usize, PlannedRun, RunState)> = planned
        .into_iter()
        .zip(states)
        .enumerate()
        .map(|(i, (r, s))| (i, r, s))
        .collect();
    let results: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; total]);
    let queue: Mutex<VecDeque<&(usize, PlannedRun, RunState)>> = Mutex::new(work.iter().collect());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let threads = options
        .threads_per_job
        .unwrap_or_else(|| (rayon::current_num_threads() / jobs).max(1));

    let worker = |device: Option<DeviceSlot>| {
        loop {
            // A signal (SIGINT / SIGTERM) stops the grid: the runs under way checkpoint and
            // stop, and no new one starts.
            if stop.load(std::sync::atomic::Ordering::SeqCst) || interrupt::requested().is_some() {
                return;
            }
            let Some((i, run, state)) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
            else {
                return;
            };
            let at = format!("[{}/{total}] {}", i + 1, run.id);
            let outcome = match claim(run, *state) {
                Err(outcome) => {
                    match &outcome {
                        RunOutcome::AlreadyFinished => say(&format!("{at}: already finished")),
                        RunOutcome::Busy { holder } => {
                            say(&format!("{at}: trained by {holder}: left to it"))
                        }
                        RunOutcome::Failed { message } => eprintln!("{at}: FAILED: {message}"),
                        _ => {}
                    }
                    outcome
                }
                Ok((lock, state)) => {
                    if let Some(was) = &lock.took_over {
                        say(&format!("{at}: took over the stale lock of {was}"));
                    }
                    say(&format!("{at}: {}", describe(state)));
                    let started = Instant::now();
                    let outcome = if jobs > 1 {
                        let exe = options.executable.as_deref().expect("checked above");
                        run_child(
                            exe,
                            threads,
                            device.map(|d| d.index),
                            &out,
                            run,
                            state,
                            options,
                        )
                    } else {
                        run_here(run, state, options)
                    };
                    drop(lock);
                    let took = started.elapsed().as_secs_f64();
                    match &outcome {
                        RunOutcome::Finished { test_accuracy, .. } => say(&format!(
                            "{at}: test accuracy {:.2}% ({took:.0} s)",
                            100.0 * test_accuracy
                        )),
                        RunOutcome::Stopped { epoch } => {
                            say(&format!("{at}: stopped after epoch {epoch}"))
                        }
                        RunOutcome::Failed { message } => {
                            eprintln!("{at}: FAILED: {message}");
                            if options.fail_fast {
                                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                            }
                        }
                        _ => {}
                    }
                    outcome
                }
            };
            results.lock().unwrap_or_else(|p| p.into_inner())[*i] = Some(outcome);
        }
    };
    if jobs == 1 {
        // In this thread: training keeps the main thread's large stack.
        worker(options.devices.first().copied());
    } else {
        let worker = &worker;
        std::thread::scope(|scope| {
            for j in 0..jobs {
                let device = options.devices.get(j).copied();
                scope.spawn(move || worker(device));
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

/// One task of a job array: trains (or resumes) the run at `index` of the grid's listing (as
/// `--dry-run` shows it, for this selection) in this process, then returns. `index` `None` reads
/// the scheduler's variable ([`cluster::task_index`]). Every check (the index, the run folder
/// against the grid) comes before anything is written; a run another process holds is refused,
/// naming that process.
pub fn run_task(
    grid_path: &Path,
    options: &ExperimentOptions,
    index: Option<usize>,
) -> Result<ExperimentOutcome> {
    let index = cluster::task_index(index, |k| std::env::var(k).ok())?;
    let grid = Grid::load(grid_path)?;
    let out = output_folder(&grid, options.out.as_deref());
    let planned = grid.plan(&out, &options.selection)?;
    if planned.is_empty() {
        return Err(Error::invalid(
            "--models/--datasets/--recipes/--seeds",
            "the selection keeps no run of the grid",
        ));
    }
    if index >= planned.len() {
        return Err(Error::invalid(
            "--task-index",
            format!(
                "{index} is past the end: the grid {} has {} runs (indices 0 to {}; `--dry-run` lists them)",
                grid_path.display(),
                planned.len(),
                planned.len() - 1
            ),
        ));
    }
    let run = planned[index].clone();
    // The folder must hold this run (a grid edited since submission would train another).
    state::inspect(&run)?;
    check_devices(&options.devices, 1, std::slice::from_ref(&run))?;
    say(&format!(
        "task {index} of {} runs in {}: {}",
        planned.len(),
        out.display(),
        run.id
    ));
    if options.dry_run {
        let s = state::inspect(&run)?;
        let o = if s == RunState::Finished {
            RunOutcome::AlreadyFinished
        } else {
            RunOutcome::NotRun { state: s }
        };
        return Ok(ExperimentOutcome {
            out,
            runs: vec![(run, o)],
        });
    }
    if let Some(d) = options.devices.first() {
        crate::device::use_index(d.index)?;
    }
    fs::create_dir_all(&out).at(&out)?;
    let lock = match run_lock::try_acquire(&run.dir)? {
        Acquired::Held(lock) => lock,
        Acquired::Busy(found) => return Err(run_lock::busy_error(&run.dir, &found)),
    };
    if let Some(was) = &lock.took_over {
        say(&format!("{}: took over the stale lock of {was}", run.id));
    }
    let now = state::inspect(&run)?;
    write_manifest(&out, &grid, &planned)?;
    let started = Instant::now();
    let outcome = match now {
        RunState::Finished => {
            say(&format!("{}: already finished", run.id));
            RunOutcome::AlreadyFinished
        }
        s => {
            say(&format!("{}: {}", run.id, describe(s)));
            run_here(&run, s, options)
        }
    };
    drop(lock);
    match &outcome {
        RunOutcome::Finished { test_accuracy, .. } => say(&format!(
            "{}: test accuracy {:.2}% ({:.0} s)",
            run.id,
            100.0 * test_accuracy,
            started.elapsed().as_secs_f64()
        )),
        RunOutcome::Stopped { epoch } => say(&format!("{}: stopped after epoch {epoch}", run.id)),
        _ => {}
    }
    Ok(ExperimentOutcome {
        out,
        runs: vec![(run, outcome)],
    })
}

/// Takes `run`'s lock (held while it trains, here or in a child) and reads its state again
/// under it, since another process may have trained it after the grid was planned: the lock
/// and the state, or the outcome when there is nothing for this process to do.
fn claim(
    run: &PlannedRun,
    planned: RunState,
) -> std::result::Result<(run_lock::RunLock, RunState), RunOutcome> {
    if planned == RunState::Finished {
        return Err(RunOutcome::AlreadyFinished);
    }
    let failed = |e: Error| RunOutcome::Failed {
        message: e.to_string(),
    };
    match run_lock::try_acquire(&run.dir).map_err(failed)? {
        Acquired::Held(lock) => match state::inspect(run).map_err(failed)? {
            RunState::Finished => Err(RunOutcome::AlreadyFinished),
            now => Ok((lock, now)),
        },
        Acquired::Busy(found) => Err(RunOutcome::Busy {
            holder: found
                .holder
                .map_or_else(|| "another process".to_string(), |h| h.describe()),
        }),
    }
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
        _ => (
            0,
            state::clear_leftovers(&run.dir).and_then(|()| train(run.config.clone(), &run_options)),
        ),
    };
    match result {
        Ok(outcome) => match outcome.end {
            RunEnd::Finished(summary) => RunOutcome::Finished {
                from,
                test_accuracy: summary.test.accuracy,
            },
            RunEnd::Stopped(epoch) => RunOutcome::Stopped { epoch },
        },
        Err(e) => RunOutcome::Failed {
            message: e.to_string(),
        },
    }
}

/// Waits for a `visionnet train` child, passing on a stop this process was asked for, so that
/// the child checkpoints and stops as the grid's own runs do. The children run in process
/// groups of their own (see [`run_child`]), so a Ctrl-C reaches them only this way, once; a
/// scheduler that signals every process of a job itself (SLURM's `scancel`) reaches a child
/// twice, which ends it at once with its last complete checkpoint: there, one run per task
/// (`--task-index`, as `--submit` writes it) has no children.
fn wait_forwarding_signals(child: &mut std::process::Child) -> std::io::Result<ExitStatus> {
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if let Some(signal) = interrupt::requested().filter(|_| !forwarded) {
            interrupt::send(child.id(), signal);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log of a run trained in a child process: `OUT/logs/<id with / as __>.log`.
pub fn log_path(out: &Path, run: &PlannedRun) -> PathBuf {
    out.join("logs")
        .join(format!("{}.log", run.id.replace('/', "__")))
}

/// Trains or resumes `run` in a `visionnet train` child process, its output in its log.
fn run_child(
    exe: &Path,
    threads: usize,
    device_index: Option<usize>,
    out: &Path,
    run: &PlannedRun,
    state: RunState,
    options: &ExperimentOptions,
) -> RunOutcome {
    let attempt = || -> Result<RunOutcome> {
        let log = log_path(out, run);
        let logs = log.parent().expect("a file in logs/");
        fs::create_dir_all(logs).at(logs)?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .at(&log)?;
        let mut command = Command::new(exe);
        command.args(["--threads", &threads.to_string(), "train", "--quiet"]);
        command.args(["--keep-checkpoints", &options.keep_checkpoints.to_string()]);
        if let Some(e) = options.stop_after {
            command.args(["--stop-after", &e.to_string()]);
        }
        if let Some(d) = device_index {
            command.args(["--device-index", &d.to_string()]);
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
        writeln!(
            file,
            "$ {} {}",
            exe.display(),
            command
                .get_args()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )
        .at(&log)?;
        // Its own process group: a Ctrl-C meant for the grid reaches it once, from the grid.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().at(&log)?)
            .stderr(file)
            .spawn()
            .map_err(|e| Error::io(exe, e))?;
        let status = wait_forwarding_signals(&mut child).map_err(|e| Error::io(exe, e))?;
        let stopped_by_signal = interrupt::requested()
            .is_some_and(|signal| status.code() == Some(interrupt::exit_code(signal)));
        if !status.success() && !stopped_by_signal {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| !l.trim().is_empty())
                .take(3)
                .collect();
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
    attempt().unwrap_or_else(|e| RunOutcome::Failed {
        message: e.to_string(),
    })
}
