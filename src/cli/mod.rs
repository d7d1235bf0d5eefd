//! The command line: argument parsing only; each subcommand calls one library function.

mod allocator;
mod bench;
pub mod config_file;
mod data;
mod experiment;
mod explain;
mod export;
mod inference;
mod models;
mod train;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// visionnet: brain-inspired features (attention, multi-feature extraction, lateral
/// connections) in CNNs for image classification.
#[derive(Debug, Parser)]
#[command(name = "visionnet", version, about, long_about = None)]
pub struct Cli {
    /// CPU threads for tensor work and data loading (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (a fresh run, or `--resume RUN_DIR`).
    #[command(args_override_self = true, allow_negative_numbers = true)]
    Train(train::TrainArgs),
    /// Evaluate a checkpoint on a dataset's test set.
    Eval(inference::EvalArgs),
    /// Classify images with a checkpoint: top-5 classes with probabilities.
    Predict(inference::PredictArgs),
    /// Write a checkpoint's weights as safetensors under the reference implementation's names
    /// (bench/pytorch_reference.py, torchvision, timm), with a JSON sidecar, for PyTorch.
    Export(export::ExportArgs),
    /// List the registered models with their parameters and forward FLOPs.
    Models(models::ModelsArgs),
    /// Time training steps of a model on synthetic data.
    Bench(bench::BenchArgs),
    /// Run a grid of trainings (models x datasets x recipes x seeds), resuming where it stopped.
    Experiment(experiment::ExperimentArgs),
    /// Report on a folder of runs: accuracy table, curves, costs, each model against its twin.
    Report(experiment::ReportArgs),
    /// Heat maps of a checkpoint for images or test samples (Grad-CAM and eight more methods),
    /// their faithfulness (`--metrics`) and the randomisation check (`--sanity`).
    Gradcam(explain::GradcamArgs),
    /// Two checkpoints on one test set: where each is right and the other wrong, McNemar's
    /// test, and galleries of both models' heat maps (the study's Figures 5 and 6).
    Compare(explain::CompareArgs),
    /// Datasets: download, inspect.
    #[command(subcommand)]
    Data(data::DataCommand),
}

/// Parses the command line (with a train config file spliced in) and runs the command.
pub fn run() -> anyhow::Result<()> {
    allocator::keep_freed_memory();
    let argv: Vec<String> = std::env::args().collect();
    let argv = config_file::splice(argv)?;
    let matches = Cli::command().get_matches_from(&argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The main thread joins rayon's pool as its worker 0, as OpenMP's master thread does in
    // PyTorch: a training step's many parallel passes then start on the thread that reaches
    // them, where outside the pool each one is handed to a sleeping worker and the main thread
    // sleeps until it ends (two wake-ups a pass). Nothing here blocks the main thread on
    // another thread that needs the pool: the batch thread only decodes and crops, and a
    // grid's parallel jobs are child processes.
    let mut pool = rayon::ThreadPoolBuilder::new().use_current_thread();
    if let Some(threads) = cli.threads {
        pool = pool.num_threads(threads as usize);
    }
    pool.build_global()
        .map_err(|e| anyhow::anyhow!("starting the thread pool (--threads): {e}"))?;
    match cli.command {
        Command::Train(args) => {
            let train_matches = matches
                .subcommand_matches("train")
                .expect("train was parsed");
            train::run(args, train_matches)
        }
        Command::Eval(args) => inference::eval(args),
        Command::Predict(args) => inference::predict(args),
        Command::Export(args) => export::run(args),
        Command::Models(args) => models::run(args),
        Command::Data(command) => data::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Report(args) => experiment::report(args),
        Command::Gradcam(args) => explain::gradcam(args),
        Command::Compare(args) => explain::compare(args),
    }
}
