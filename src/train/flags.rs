//! Train flags as data: TOML values turned into command-line tokens, and tokens parsed into a
//! [`TrainConfig`] by the same clap definitions as `visionnet train`, so a config file, a grid
//! file and the command line are checked by one set of rules.

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
pub fn toml_flag_value(value: &toml::Value) -> Option<String> {
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
