//! `train --config FILE`: a TOML file whose keys are the train flags (without `--`).
//!
//! The file's entries become flags placed before the command line's own, so flags given on the
//! command line override the file, and both go through the same parsing and checks. Keys and
//! values are read by [`flags::table_entry`], as a grid reads its recipes' config files, so one
//! file means the same in both places (paths in it are relative to the file's folder).

use std::collections::HashSet;
use std::path::Path;

use anyhow::bail;
use clap::CommandFactory;

use super::Cli;
use crate::train::flags::{self, FlagProblem};

/// The long flags of `visionnet train` a file may set: the run's configuration and how it is
/// carried out, not the file itself or `--resume`.
fn train_flags() -> Vec<String> {
    let command = Cli::command();
    let train = command
        .find_subcommand("train")
        .expect("train is a subcommand");
    train
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .filter(|l| !["config", "resume", "help"].contains(&l.as_str()))
        .collect()
}

/// The train flags `file` sets, as command-line tokens.
pub fn tokens(file: &Path) -> anyhow::Result<Vec<String>> {
    let table = flags::read_table(file).map_err(|e| anyhow::anyhow!("--config {e}"))?;
    let known = train_flags();
    let paths: HashSet<String> = flags::path_flags().into_iter().collect();
    let base = flags::folder_of(file);
    let where_ = file.display().to_string();
    let mut out = Vec::new();
    for (key, value) in &table {
        match flags::table_entry(key, value, &known, &paths, &base) {
            Ok((flag, text)) => out.extend([format!("--{flag}"), text]),
            Err(FlagProblem::Unknown) => bail!(
                "{}; the keys are the train flags: {}",
                FlagProblem::Unknown.describe(&where_, key),
                known.join(", ")
            ),
            Err(problem) => bail!("{}", problem.describe(&where_, key)),
        }
    }
    Ok(out)
}
/// If the command is `train --config FILE`, inserts FILE's flags right after `train`, and checks
/// them on their own first so a bad value is blamed on the file.
pub fn splice(argv: Vec<String>) -> anyhow::Result<Vec<String>> {
    // The subcommand comes after the global options (`--threads N`).
    let mut train_at = 1;
    while train_at < argv.len() {
        match argv[train_at].as_str() {
            "--threads" => train_at += 2,
            a if a.starts_with("--threads=") => train_at += 1,
            _ => break,
        }
    }
    if argv.get(train_at).map(String::as_str) != Some("train") {
        return Ok(argv);
    }
    let mut config = None;
    let mut i = train_at + 1;
    while i < argv.len() {
        if argv[i] == "--config" {
            config = argv.get(i + 1).cloned();
            i += 1;
        } else if let Some(v) = argv[i].strip_prefix("--config=") {
            config = Some(v.to_string());
        }
        i += 1;
    }
    let Some(config) = config else {
        return Ok(argv);
    };
    let tokens = tokens(Path::new(&config))?;
    let mut alone = vec![argv[0].clone(), "train".to_string()];
    alone.extend(tokens.iter().cloned());
    if let Err(e) = Cli::command().try_get_matches_from(&alone) {
        bail!("in {config}: {}", e.render().to_string().trim_end());
    }
    let mut spliced = argv[..=train_at].to_vec();
    spliced.extend(tokens);
    spliced.extend(argv[train_at + 1..].iter().cloned());
    Ok(spliced)
}
