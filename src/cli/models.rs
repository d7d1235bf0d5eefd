//! `visionnet models`.

use crate::device::DeviceKind;
use crate::model::registry::{self, MODELS};
use crate::model::{ModelOptions, ModelSpec};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Classes of the output layer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    classes: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let device = DeviceKind::Flex.device()?;
    let mut costs = Vec::new();
    for entry in MODELS {
        let spec = ModelSpec {
            name: entry.name.to_string(),
            options: ModelOptions::default(),
        };
        costs.push(registry::cost(&spec, args.classes as usize, [3, 32, 32], &device)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&costs)?);
        return Ok(());
    }
    println!("{:<12} {:>12} {:>14}  description (32x32 RGB input, {} classes)", "model", "params", "forward FLOPs", args.classes);
    for c in costs {
        println!("{:<12} {:>12} {:>13.1}M  {}", c.name, c.params, c.flops as f64 / 1e6, c.summary);
    }
    Ok(())
}
