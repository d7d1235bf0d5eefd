//! `visionnet train`.

use std::path::PathBuf;

use anyhow::bail;
use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::train::{self, RunEnd, RunOptions, TrainConfig};

/// Flags of `train`: the run's configuration plus how to carry it out.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    config: TrainConfig,
    /// TOML file of train flags (keys without `--`, e.g. `lr = 0.001`); the command line
    /// overrides it. `configs/study.toml` is the study's recipe.
    #[arg(long = "config", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its newest checkpoint, with its own configuration.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Stop after this epoch, leaving the run resumable.
    #[arg(long, value_name = "EPOCH", value_parser = clap::value_parser!(u64).range(1..))]
    stop_after: Option<u64>,
    /// Checkpoints to keep (the newest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    keep_checkpoints: u64,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Which device of its backend to compute on: the I-th discrete GPU (wgpu), CUDA device I
    /// (cuda), LibTorch's CUDA device I (tch). Not part of the run's configuration.
    #[arg(long, value_name = "I")]
    device_index: Option<usize>,
}

/// Flags that may accompany `--resume`: they change how the run is carried out, not what it
/// computes.
const RESUME_FLAGS: [&str; 7] = [
    "resume",
    "stop_after",
    "keep_checkpoints",
    "quiet",
    "threads",
    "config_file",
    "device_index",
];

pub fn run(args: TrainArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let options = RunOptions {
        stop_after: args.stop_after.map(|e| e as usize),
        quiet: args.quiet,
        keep_checkpoints: args.keep_checkpoints as usize,
    };
    if let Some(i) = args.device_index {
        crate::device::use_index(i)?;
    }
    crate::train::interrupt::install();
    let outcome = match &args.resume {
        Some(run_dir) => {
            let fixed: Vec<String> = matches
                .ids()
                .map(|id| id.as_str().to_string())
                .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
                .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
                .collect();
            if !fixed.is_empty() {
                bail!(
                    "--resume continues {} with the configuration in its run.json; it cannot be \
                     combined with --{}",
                    run_dir.display(),
                    fixed.join(", --").replace('_', "-")
                );
            }
            train::resume(run_dir, &options)?
        }
        None => train::train(args.config, &options)?,
    };
    if let Some((signal, checkpoint)) = &outcome.interrupted {
        let name = crate::train::interrupt::name(*signal);
        eprintln!(
            "{name}: stopped after the current step; checkpoint {}\ncontinue with: visionnet train --resume {}",
            checkpoint.display(),
            outcome.run_dir.display()
        );
        std::process::exit(crate::train::interrupt::exit_code(*signal));
    }
    if let RunEnd::Stopped(epoch) = outcome.end {
        println!(
            "stopped after epoch {epoch}; continue with: visionnet train --resume {}",
            outcome.run_dir.display()
        );
    }
    Ok(())
}
