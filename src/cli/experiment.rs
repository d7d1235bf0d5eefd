//! `visionnet experiment` and `visionnet report`.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::device::DeviceSlot;
use crate::report::{self, ReportFiles, ReportOptions, StatsOptions};
use crate::train::experiment::cluster::{self, Scheduler, Submission, SubmitOptions};
use crate::train::experiment::status::{self, GridStatus, RunStatus};
use crate::train::experiment::{self, ExperimentOptions, ExperimentOutcome, RunOutcome, Selection};
use crate::train::interrupt;

/// Flags of the statistics in the report.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Bootstrap replicates of the accuracy-difference intervals.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    bootstrap: u64,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = confidence)]
    confidence: f64,
    /// Seed of the bootstrap's draws.
    #[arg(long, default_value_t = 0)]
    bootstrap_seed: u64,
}

/// `--task-index`: a number, or (no value) the scheduler's variable.
#[derive(Clone, Copy, Debug)]
enum TaskIndex {
    Given(usize),
    FromEnv,
}

fn task_index(s: &str) -> Result<TaskIndex, String> {
    if s == "env" {
        return Ok(TaskIndex::FromEnv);
    }
    s.parse()
        .map(TaskIndex::Given)
        .map_err(|_| format!("'{s}' is not a task index (a number from 0)"))
}

fn max_parallel(s: &str) -> Result<u64, String> {
    let k: u64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if k == 0 {
        return Err("0 tasks at a time would never start one; give 1 or more".to_string());
    }
    Ok(k)
}

fn confidence(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v > 0.5 && v < 1.0) {
        return Err(format!("{v} must be between 0.5 and 1"));
    }
    Ok(v)
}

impl StatsArgs {
    fn options(&self) -> StatsOptions {
        StatsOptions {
            replicates: self.bootstrap as usize,
            level: self.confidence,
            seed: self.bootstrap_seed,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ExperimentArgs {
    /// The grid file (TOML: datasets, models, recipes, seeds; see grids/README.md).
    #[arg(long, value_name = "FILE")]
    grid: PathBuf,
    /// Output folder (default: the grid's `out`, else runs/<grid file name>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Runs at once, each in its own `visionnet train` process (default 1: one after another,
    /// here; with --devices, one per device).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: Option<u64>,
    /// One device per job, comma-separated: `wgpu:0,wgpu:1` (the I-th discrete GPU), `cuda:I`,
    /// `tch:I`. The grid's runs must compute on that backend (`device = "wgpu"`).
    #[arg(long, value_delimiter = ',', value_name = "BACKEND:I")]
    devices: Option<Vec<DeviceSlot>>,
    /// CPU threads of each parallel run (default: the threads available / --jobs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads_per_job: Option<u64>,
    /// Only these model labels of the grid, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    models: Option<Vec<String>>,
    /// Only these dataset labels.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    datasets: Option<Vec<String>>,
    /// Only these recipe labels.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    recipes: Option<Vec<String>>,
    /// Only these seeds.
    #[arg(long, value_delimiter = ',', value_name = "SEEDS")]
    seeds: Option<Vec<u64>>,
    /// List the runs (with their task indices) and where each stands; train nothing. With
    /// --submit: write the script or manifest, submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Train (or resume) only the run at this index of the listing, then exit: one task of a
    /// job array. Without a value: SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX (Kubernetes).
    #[arg(long, value_name = "I", num_args = 0..=1, default_missing_value = "env", value_parser = task_index,
          conflicts_with_all = ["submit", "status", "jobs", "report"])]
    task_index: Option<TaskIndex>,
    /// Submit one task per unfinished run to a scheduler: `slurm` (a job array, `sbatch`) or
    /// `k8s` (an Indexed Job manifest, written, not applied). See docs/cluster.md.
    #[arg(long, value_enum, value_name = "SCHEDULER", conflicts_with_all = ["status", "jobs"])]
    submit: Option<Scheduler>,
    /// SLURM partition of the tasks.
    #[arg(long, value_name = "P", requires = "submit")]
    partition: Option<String>,
    /// Time limit of each task: HH:MM:SS or D-HH:MM:SS.
    #[arg(long, value_name = "HH:MM:SS", requires = "submit")]
    time: Option<String>,
    /// CPUs of each task (also its training threads).
    #[arg(long, value_name = "N", requires = "submit", value_parser = clap::value_parser!(u64).range(1..))]
    cpus_per_task: Option<u64>,
    /// GPUs of each task.
    #[arg(long, value_name = "N", requires = "submit")]
    gpus_per_task: Option<u64>,
    /// Tasks running at once (the array's %K; the Job's parallelism).
    #[arg(long, value_name = "K", requires = "submit", value_parser = max_parallel)]
    max_parallel: Option<u64>,
    /// One more `#SBATCH` line (repeatable): --sbatch-arg=--mem=8G.
    #[arg(
        long,
        value_name = "ARG",
        requires = "submit",
        allow_hyphen_values = true
    )]
    sbatch_arg: Vec<String>,
    /// Kubernetes: the container image (with `visionnet` on its PATH).
    #[arg(long, value_name = "IMAGE", requires = "submit")]
    image: Option<String>,
    /// Kubernetes: CLAIM[:PATH], a PersistentVolumeClaim mounted at PATH (default: this folder)
    /// holding the grid, its data and the output folder.
    #[arg(long, value_name = "CLAIM[:PATH]", requires = "submit")]
    volume: Option<String>,
    /// Where each run stands, read from the run folders: finished, running (a live lock),
    /// interrupted (a stale lock, or run.json without summary) or pending. Trains nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "report"])]
    status: bool,
    /// Stop every run after this epoch, leaving it resumable (run the grid again to go on).
    #[arg(long, value_name = "EPOCH", value_parser = clap::value_parser!(u64).range(1..))]
    stop_after: Option<u64>,
    /// Stop at the first failed run (default: go on with the others, report failures at the end).
    #[arg(long)]
    fail_fast: bool,
    /// Checkpoints to keep per run (the newest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    keep_checkpoints: u64,
    /// Only the grid's own lines, no per-epoch progress.
    #[arg(long)]
    quiet: bool,
    /// Build the report (as `visionnet report OUT`) when the runs are done. With --submit slurm:
    /// a job that builds it after the array.
    #[arg(long)]
    report: bool,
    #[command(flatten)]
    stats: StatsArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Folder of runs: a grid's output folder, or any folder holding run directories.
    #[arg(value_name = "RUNS_DIR")]
    runs: PathBuf,
    /// Where to write the report (default: RUNS_DIR/report).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    stats: StatsArgs,
}

fn print_report(files: &ReportFiles) {
    println!("\n{}", files.table);
    println!(
        "report ({} runs, {} finished): {}",
        files.runs.0,
        files.runs.1,
        files.html.display()
    );
    println!(
        "also: {}, {}, {} figures in {}",
        files.markdown.display(),
        files.json.display(),
        files.figures.len(),
        files.dir.display()
    );
}

fn print_outcome(outcome: &ExperimentOutcome, dry_run: bool) -> anyhow::Result<()> {
    let count = |f: fn(&RunOutcome) -> bool| outcome.runs.iter().filter(|(_, o)| f(o)).count();
    if dry_run {
        println!("{:>5}  {:<60} state", "index", "run");
        for (i, (run, o)) in outcome.runs.iter().enumerate() {
            let state = match o {
                RunOutcome::AlreadyFinished => "finished".to_string(),
                RunOutcome::NotRun {
                    state: experiment::RunState::Partial { epoch },
                } => format!("resume after epoch {epoch}"),
                _ => "new".to_string(),
            };
            println!("{i:>5}  {:<60} {state}", run.id);
        }
        return Ok(());
    }
    println!(
        "{} runs in {}: {} trained now, {} already finished, {} stopped, {} trained elsewhere, {} failed",
        outcome.runs.len(),
        outcome.out.display(),
        count(|o| matches!(o, RunOutcome::Finished { .. })),
        count(|o| matches!(o, RunOutcome::AlreadyFinished)),
        count(|o| matches!(o, RunOutcome::Stopped { .. })),
        count(|o| matches!(o, RunOutcome::Busy { .. })),
        count(|o| matches!(o, RunOutcome::Failed { .. })),
    );
    let failures = outcome.failures();
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(run, o)| match o {
                RunOutcome::Failed { message } => format!("  {}: {message}", run.id),
                _ => String::new(),
            })
            .collect();
        bail!(
            "{} run(s) failed (run the grid again to retry them):\n{}",
            failures.len(),
            list.join("\n")
        );
    }
    Ok(())
}

fn print_status(status: &GridStatus) {
    for (i, (run, s)) in status.runs.iter().enumerate() {
        let what = match s {
            RunStatus::Finished => "finished".to_string(),
            RunStatus::Running { holder, epoch } => {
                format!("running, {epoch} epochs done ({holder})")
            }
            RunStatus::Interrupted { epoch, why } => {
                format!("interrupted after epoch {epoch} ({why})")
            }
            RunStatus::Pending => "pending".to_string(),
            RunStatus::Conflict { message } => format!("conflict: {message}"),
        };
        println!("{i:>5}  {:<50} {what}", run.id);
    }
    let counts: Vec<String> = status
        .counts()
        .iter()
        .map(|(c, n)| format!("{n} {c}"))
        .collect();
    println!(
        "{} runs in {}: {}",
        status.runs.len(),
        status.out.display(),
        counts.join(", ")
    );
}

fn print_submission(s: &Submission, scheduler: Scheduler, dry_run: bool) {
    let Some(file) = &s.file else {
        println!(
            "all {} runs in {} are finished: nothing to submit",
            s.runs,
            s.out.display()
        );
        return;
    };
    let tasks = s
        .indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "{} of {} runs to do (indices {tasks}): {}",
        s.indices.len(),
        s.runs,
        file.display()
    );
    match (scheduler, &s.job) {
        (Scheduler::Slurm, Some(job)) => {
            println!(
                "submitted job array {job}; logs in {}",
                s.out
                    .join("slurm")
                    .join("logs")
                    .join(format!("{job}_<index>.log"))
                    .display()
            );
            if let Some(r) = &s.report_job {
                println!("submitted report job {r} (after the array)");
            }
        }
        (Scheduler::Slurm, None) if dry_run => {
            println!("dry run: not submitted (sbatch {})", file.display())
        }
        (Scheduler::K8s, _) => println!("not applied: kubectl apply -f {}", file.display()),
        _ => {}
    }
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let devices = args.devices.unwrap_or_default();
    let jobs = match args.jobs {
        Some(j) => j as usize,
        None => devices.len().max(1),
    };
    let options = ExperimentOptions {
        out: args.out,
        selection: Selection {
            models: args.models,
            datasets: args.datasets,
            recipes: args.recipes,
            seeds: args.seeds,
        },
        jobs,
        executable: Some(std::env::current_exe()?),
        threads_per_job: args.threads_per_job.map(|t| t as usize),
        stop_after: args.stop_after.map(|e| e as usize),
        fail_fast: args.fail_fast,
        quiet: args.quiet,
        dry_run: args.dry_run,
        keep_checkpoints: args.keep_checkpoints as usize,
        devices,
    };
    if args.status {
        print_status(&status::grid_status(&args.grid, &options)?);
        return Ok(());
    }
    if let Some(scheduler) = args.submit {
        let submit = SubmitOptions {
            scheduler,
            partition: args.partition,
            time: args.time,
            cpus_per_task: args.cpus_per_task.map(|n| n as usize),
            gpus_per_task: args.gpus_per_task.map(|n| n as usize),
            max_parallel: args.max_parallel.map(|n| n as usize),
            sbatch_args: args.sbatch_arg,
            image: args.image,
            volume: args.volume,
            report: args.report,
            dry_run: args.dry_run,
            executable: std::env::current_exe()?,
        };
        let submission = cluster::submit(&args.grid, &options, &submit)?;
        print_submission(&submission, scheduler, args.dry_run);
        return Ok(());
    }
    // SIGINT / SIGTERM (Ctrl-C, a scheduler's stop): the runs under way checkpoint after their
    // current step and stop, and no new run starts.
    interrupt::install();
    if let Some(index) = args.task_index {
        let index = match index {
            TaskIndex::Given(i) => Some(i),
            TaskIndex::FromEnv => None,
        };
        let outcome = experiment::run_task(&args.grid, &options, index)?;
        exit_if_signalled(&args.grid);
        return print_outcome(&outcome, args.dry_run);
    }
    let outcome = experiment::run_grid(&args.grid, &options)?;
    exit_if_signalled(&args.grid);
    if args.report && !args.dry_run {
        // The report is built even if some runs failed.
        let report_options = ReportOptions {
            out: None,
            stats: args.stats.options(),
        };
        let files = report::build(&outcome.out, &report_options)?;
        print_report(&files);
    }
    print_outcome(&outcome, args.dry_run)
}

/// After a grid a signal stopped: says so, and how to continue, and exits with 128 + the
/// signal's number (130, 143) as `train` does.
fn exit_if_signalled(grid: &Path) {
    if let Some(signal) = interrupt::requested() {
        eprintln!(
            "{}: the grid stopped; its runs under way checkpointed after their current step\n\
             continue with the same command (visionnet experiment --grid {} ...)",
            interrupt::name(signal),
            grid.display()
        );
        std::process::exit(interrupt::exit_code(signal));
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        crate::error::check_output_dir(out, "--out")?;
    }
    let files = report::build(
        &args.runs,
        &ReportOptions {
            out: args.out,
            stats: args.stats.options(),
        },
    )?;
    print_report(&files);
    Ok(())
}
