//! Train flags as data: TOML tables of flags (a `train --config` file, a grid's sections and its
//! recipes' config files) turned into command-line tokens, and tokens parsed into a
//! [`TrainConfig`] by the same clap definitions as `visionnet train`, so a config file, a grid
//! file and the command line are checked by one set of rules. This is the one place a TOML key
//! becomes a flag: its spelling is checked, its value turned into flag text and a path value
//! resolved against the file's folder.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use super::config::TrainConfig;

/// `train`'s configuration flags, parsed on their own.
#[derive(Debug, Parser)]
#[command(
    name = "train",
    args_override_self = true,
    allow_negative_numbers = true
)]
struct TrainFlags {
    #[command(flatten)]
    config: TrainConfig,
}

/// Long names of every flag of [`TrainConfig`] (without `--`), in definition order.
pub fn known_flags() -> Vec<String> {
    TrainFlags::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .filter(|l| l != "help")
        .collect()
}

/// Long names of the flags whose value is a path (clap's value parser is `PathBuf`).
pub fn path_flags() -> Vec<String> {
    TrainFlags::command()
        .get_arguments()
        .filter(|a| a.get_value_hint() == clap::ValueHint::AnyPath)
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// Parses flag tokens (`["--lr", "0.001", ...]`) into a configuration; unset flags take their
/// defaults. The error is clap's message, without its usage lines.
pub fn parse(tokens: &[String]) -> Result<TrainConfig, String> {
    let argv = std::iter::once("train".to_string()).chain(tokens.iter().cloned());
    TrainFlags::try_parse_from(argv)
        .map(|f| f.config)
        .map_err(|e| {
            let text = e.render().to_string();
            // Keep the first line ("error: invalid value ... for '--lr <LR>': ..."), drop usage.
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string()
        })
}

/// Turns one TOML value into a flag value: lists become comma-separated. `None` for tables and
/// dates, which no flag takes.
fn toml_flag_value(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_flag_value)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        toml::Value::Table(_) | toml::Value::Datetime(_) => return None,
    })
}

/// Why one key of a flag table is not a flag setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagProblem {
    /// No flag has this name.
    Unknown,
    /// The name with `_` for `-` (`val_size`): the flag it means.
    Spelling(String),
    /// The value is a table or a date (its TOML type), which no flag takes.
    Value(&'static str),
}

impl FlagProblem {
    /// The problem in words, for `key` in `section` (a file, a grid section). [`Unknown`] is
    /// worded by the caller, which knows whether to list the flags.
    ///
    /// [`Unknown`]: FlagProblem::Unknown
    pub fn describe(&self, section: &str, key: &str) -> String {
        match self {
            FlagProblem::Unknown => format!("{section}: unknown key '{key}'"),
            FlagProblem::Spelling(flag) => {
                format!("{section}: '{key}' is not a train flag; write it '{flag}'")
            }
            FlagProblem::Value(kind) => format!(
                "{section}: '{key}' has a {kind} value; expected a string, number, boolean or list"
            ),
        }
    }
}

/// One entry of a TOML flag table as a `(flag, value)` pair: `key` checked against `known` (long
/// names without `--`), the value as flag text, and, for the flags in `paths`, a relative path
/// resolved against `base` (the folder of the file it was written in).
pub fn table_entry(
    key: &str,
    value: &toml::Value,
    known: &[String],
    paths: &HashSet<String>,
    base: &Path,
) -> Result<(String, String), FlagProblem> {
    if !known.iter().any(|k| k == key) {
        let dashed = key.replace('_', "-");
        return Err(if known.contains(&dashed) {
            FlagProblem::Spelling(dashed)
        } else {
            FlagProblem::Unknown
        });
    }
    let mut text = toml_flag_value(value).ok_or(FlagProblem::Value(value.type_str()))?;
    if paths.contains(key) {
        text = resolve(base, Path::new(&text)).display().to_string();
    }
    Ok((key.to_string(), text))
}

/// Reads a TOML file of flags (`train --config`, a grid recipe's `config`) as a table. The
/// error names the file.
pub fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: not valid TOML: {e}", path.display()))
}

/// `base/path` unless `path` is absolute, made absolute and without `.` or `..`, so the same
/// file reads the same whichever directory it is used from.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    if let Ok(real) = joined.canonicalize() {
        return real;
    }
    // Not there (yet): fold `..` lexically.
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The folder a file's relative paths are read against (`.` for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: toml::Value) -> Result<(String, String), FlagProblem> {
        let known = known_flags();
        let paths: HashSet<String> = path_flags().into_iter().collect();
        table_entry(key, &value, &known, &paths, Path::new("/grids/sub"))
    }

    #[test]
    fn keys_are_checked_values_become_flag_text_and_paths_follow_the_file() {
        assert_eq!(
            entry("lr", toml::Value::Float(0.002)),
            Ok(("lr".into(), "0.002".into()))
        );
        let widths = toml::Value::Array(vec![8.into(), 16.into()]);
        assert_eq!(
            entry("widths", widths),
            Ok(("widths".into(), "8,16".into()))
        );
        assert_eq!(
            entry("val_size", 10.into()),
            Err(FlagProblem::Spelling("val-size".into()))
        );
        assert_eq!(entry("learning-rate", 1.into()), Err(FlagProblem::Unknown));
        let table = toml::Value::Table(toml::Table::new());
        assert_eq!(entry("lr", table), Err(FlagProblem::Value("table")));
        // `data` is a path flag: relative to the file's folder, `..` folded.
        assert_eq!(
            entry("data", "../cifar".into()),
            Ok(("data".into(), "/grids/cifar".into()))
        );
        assert_eq!(
            entry("data", "/abs/cifar".into()),
            Ok(("data".into(), "/abs/cifar".into()))
        );
    }

    #[test]
    fn a_bare_file_name_is_read_against_the_working_directory() {
        assert_eq!(folder_of(Path::new("recipe.toml")), PathBuf::from("."));
        assert_eq!(folder_of(Path::new("a/recipe.toml")), PathBuf::from("a"));
    }
}
