//! `train --config FILE`: a TOML file whose keys are the train flags (without `--`).
//!
//! The file's entries become flags placed before the command line's own, so flags given on the
//! command line override the file, and both go through the same parsing and checks.

use std::path::Path;

use anyhow::{Context, bail};
use clap::CommandFactory;

use super::Cli;

/// Turns one TOML value into a flag value: lists become comma-separated.
fn flag_value(path: &Path, key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| flag_value(path, key, v))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        other => bail!(
            "{}: key '{key}' has a {} value; expected a string, number, boolean or list",
            path.display(),
            other.type_str()
        ),
    })
}

/// The train flags `file` sets, as command-line tokens.
pub fn tokens(file: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("--config {}", file.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", file.display()))?;
    let command = Cli::command();
    let train = command
        .find_subcommand("train")
        .expect("train is a subcommand");
    let known: Vec<String> = train
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .filter(|l| !["config", "resume", "help"].contains(&l.as_str()))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        if !known.contains(key) {
            bail!(
                "{}: unknown key '{key}'; the keys are the train flags: {}",
                file.display(),
                known.join(", ")
            );
        }
        out.push(format!("--{key}"));
        out.push(flag_value(file, key, value)?);
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
