//! `visionnet experiment` and `visionnet report`.

use std::path::PathBuf;

use anyhow::bail;

use crate::report::{self, ReportFiles, ReportOptions, StatsOptions};
use crate::train::experiment::{self, ExperimentOptions, ExperimentOutcome, RunOutcome, Selection};

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
    /// Runs at once, each in its own `visionnet train` process (1: one after another, here).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
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
    /// List the runs and where each stands; train nothing.
    #[arg(long)]
    dry_run: bool,
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
    /// Build the report (as `visionnet report OUT`) when the runs are done.
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
    println!("report ({} runs, {} finished): {}", files.runs.0, files.runs.1, files.html.display());
    println!("also: {}, {}, {} figures in {}", files.markdown.display(), files.json.display(), files.figures.len(), files.dir.display());
}

fn print_outcome(outcome: &ExperimentOutcome, dry_run: bool) -> anyhow::Result<()> {
    let count = |f: fn(&RunOutcome) -> bool| outcome.runs.iter().filter(|(_, o)| f(o)).count();
    if dry_run {
        for (run, o) in &outcome.runs {
            let state = match o {
                RunOutcome::AlreadyFinished => "finished".to_string(),
                RunOutcome::NotRun { state: experiment::RunState::Partial { epoch } } => format!("resume after epoch {epoch}"),
                _ => "new".to_string(),
            };
            println!("{:<60} {state}", run.id);
        }
        return Ok(());
    }
    println!(
        "{} runs in {}: {} trained now, {} already finished, {} stopped, {} failed",
        outcome.runs.len(),
        outcome.out.display(),
        count(|o| matches!(o, RunOutcome::Finished { .. })),
        count(|o| matches!(o, RunOutcome::AlreadyFinished)),
        count(|o| matches!(o, RunOutcome::Stopped { .. })),
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
        bail!("{} run(s) failed (run the grid again to retry them):\n{}", failures.len(), list.join("\n"));
    }
    Ok(())
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let options = ExperimentOptions {
        out: args.out,
        selection: Selection {
            models: args.models,
            datasets: args.datasets,
            recipes: args.recipes,
            seeds: args.seeds,
        },
        jobs: args.jobs as usize,
        executable: Some(std::env::current_exe()?),
        threads_per_job: args.threads_per_job.map(|t| t as usize),
        stop_after: args.stop_after.map(|e| e as usize),
        fail_fast: args.fail_fast,
        quiet: args.quiet,
        dry_run: args.dry_run,
        keep_checkpoints: args.keep_checkpoints as usize,
    };
    if args.report && !args.dry_run {
        let report_options = ReportOptions { out: None, stats: args.stats.options() };
        let (outcome, files) = report::run_and_report(&args.grid, &options, &report_options)?;
        print_report(&files);
        print_outcome(&outcome, false)
    } else {
        let outcome = experiment::run_grid(&args.grid, &options)?;
        print_outcome(&outcome, args.dry_run)
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        crate::error::check_output_dir(out, "--out")?;
    }
    let files = report::build(&args.runs, &ReportOptions { out: args.out, stats: args.stats.options() })?;
    print_report(&files);
    Ok(())
}
