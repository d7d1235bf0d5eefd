//! `visionnet models`.

use crate::device::DeviceKind;
use crate::model::blocks::{ConvKind, LateralKind};
use crate::model::nets::Form;
use crate::model::registry::{self, MODELS};
use crate::model::{ModelOptions, ModelSpec};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Classes of the output layer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    classes: u64,
    /// List the layers of MODEL that Grad-CAM (`visionnet gradcam --layer`) can explain, with
    /// their activation shapes for a 32x32 RGB input.
    #[arg(long, value_name = "MODEL")]
    layers: Option<String>,
    #[command(flatten)]
    options: ModelOptions,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let device = DeviceKind::Flex.device()?;
    if let Some(name) = args.layers {
        let spec = ModelSpec { name: name.clone(), options: args.options };
        let config = registry::network_config(&spec, args.classes as usize, [3, 32, 32])?;
        let layers = config.layer_shapes([3, 32, 32], &device)?;
        let default = config.cam_layer();
        if args.json {
            let rows: Vec<_> = layers
                .iter()
                .map(|(layer, shape)| serde_json::json!({ "layer": layer, "shape": shape, "default": *layer == default }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!("{:<12} {:>16}  (layers of {name} for a 32x32 RGB input)", "layer", "channels x h x w");
        for (layer, [c, h, w]) in layers {
            let mark = if layer == default { "  (Grad-CAM default)" } else { "" };
            println!("{layer:<12} {:>16}{mark}", format!("{c} x {h} x {w}"));
        }
        return Ok(());
    }
    let mut costs = Vec::new();
    for entry in MODELS {
        // The baselines in both forms; the cnn plain and with each brain-inspired block; attn1-3.
        let variants: Vec<(ModelOptions, &str)> = if entry.name == "cnn" {
            let d = ModelOptions::default;
            vec![
                (d(), ""),
                (ModelOptions { lateral: LateralKind::Residual, ..d() }, " --lateral residual"),
                (ModelOptions { lateral: LateralKind::Dense, ..d() }, " --lateral dense"),
                (ModelOptions { conv: ConvKind::Inception, ..d() }, " --conv inception"),
                (ModelOptions { conv: ConvKind::Separable, ..d() }, " --conv separable"),
            ]
        } else if entry.name.starts_with("attn") {
            vec![(ModelOptions::default(), "")]
        } else {
            vec![(ModelOptions::default(), ""), (ModelOptions { form: Form::Cifar, ..ModelOptions::default() }, " --form cifar")]
        };
        for (options, flags) in variants {
            let spec = ModelSpec { name: entry.name.to_string(), options };
            let mut cost = registry::cost(&spec, args.classes as usize, [3, 32, 32], &device)?;
            cost.name.push_str(flags);
            costs.push(cost);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&costs)?);
        return Ok(());
    }
    println!("{:<32} {:>12} {:>14}  description (32x32 RGB input, {} classes)", "model", "params", "forward FLOPs", args.classes);
    for c in costs {
        println!("{:<32} {:>12} {:>13.1}M  {}", c.name, c.params, c.flops as f64 / 1e6, c.summary);
    }
    Ok(())
}
