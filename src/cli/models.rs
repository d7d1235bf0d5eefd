//! `visionnet models`.

use crate::device::DeviceKind;
use crate::model::blocks::{ChannelAttnKind, ConvKind, LateralKind};
use crate::model::matched::{self, MatchBy};
use crate::model::nets::Form;
use crate::model::table::{self, MODELS};
use crate::model::{ImageClassifierConfig, ModelCost, ModelOptions, ModelSpec};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Classes of the output layer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    classes: u64,
    /// List the layers of MODEL that Grad-CAM (`visionnet gradcam --layer`) can explain, with
    /// their activation shapes for a 32x32 RGB input.
    #[arg(long, value_name = "MODEL")]
    layers: Option<String>,
    /// Print the plain cnn whose widths, scaled by one factor, match MODEL's cost (with the
    /// options given here) by `--by`: its widths and both costs.
    #[arg(long = "match", value_name = "MODEL", requires = "by")]
    match_model: Option<String>,
    /// With --match: what to match, params or flops.
    #[arg(long, value_enum, requires = "match_model")]
    by: Option<MatchBy>,
    #[command(flatten)]
    options: ModelOptions,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let device = DeviceKind::Flex.device()?;
    if let (Some(name), Some(by)) = (args.match_model, args.by) {
        let spec = ModelSpec {
            name,
            options: args.options,
        };
        let m = matched::match_twin(&spec, by, args.classes as usize, [3, 32, 32], &device)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&m)?);
            return Ok(());
        }
        let join = |w: &[usize]| {
            w.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{:<34} {:>12} {:>14}  (32x32 RGB input, {} classes)",
            "model", "params", "forward FLOPs", args.classes
        );
        println!(
            "{:<34} {:>12} {:>13.2}M",
            format!("{} --widths {}", spec.name, join(&m.model_widths)),
            m.model_params,
            m.model_flops as f64 / 1e6
        );
        println!(
            "{:<34} {:>12} {:>13.2}M",
            format!("cnn --widths {}", join(&m.widths)),
            m.twin_params,
            m.twin_flops as f64 / 1e6
        );
        println!(
            "matched by {}: width factor {:.3}, {:+.2}% {}",
            by.as_str(),
            m.factor,
            100.0 * m.relative_error,
            by.as_str()
        );
        return Ok(());
    }
    if let Some(name) = args.layers {
        let spec = ModelSpec {
            name: name.clone(),
            options: args.options,
        };
        let config = table::network_config(&spec, args.classes as usize, [3, 32, 32])?;
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
        println!(
            "{:<12} {:>16}  (layers of {name} for a 32x32 RGB input)",
            "layer", "channels x h x w"
        );
        for (layer, [c, h, w]) in layers {
            let mark = if layer == default {
                "  (Grad-CAM default)"
            } else {
                ""
            };
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
                (
                    ModelOptions {
                        lateral: LateralKind::Residual,
                        ..d()
                    },
                    " --lateral residual",
                ),
                (
                    ModelOptions {
                        lateral: LateralKind::Dense,
                        ..d()
                    },
                    " --lateral dense",
                ),
                (
                    ModelOptions {
                        conv: ConvKind::Inception,
                        ..d()
                    },
                    " --conv inception",
                ),
                (
                    ModelOptions {
                        conv: ConvKind::Separable,
                        ..d()
                    },
                    " --conv separable",
                ),
                (
                    ModelOptions {
                        channel_attn: Some(ChannelAttnKind::Se),
                        ..d()
                    },
                    " --channel-attn se",
                ),
                (
                    ModelOptions {
                        channel_attn: Some(ChannelAttnKind::Eca),
                        ..d()
                    },
                    " --channel-attn eca",
                ),
                (
                    ModelOptions {
                        channel_attn: Some(ChannelAttnKind::Cbam),
                        ..d()
                    },
                    " --channel-attn cbam",
                ),
                (
                    ModelOptions {
                        channel_attn: Some(ChannelAttnKind::Gc),
                        ..d()
                    },
                    " --channel-attn gc",
                ),
            ]
        } else if entry.name.starts_with("attn") {
            vec![(ModelOptions::default(), "")]
        } else {
            vec![
                (ModelOptions::default(), ""),
                (
                    ModelOptions {
                        form: Form::Cifar,
                        ..ModelOptions::default()
                    },
                    " --form cifar",
                ),
            ]
        };
        for (options, flags) in variants {
            let spec = ModelSpec {
                name: entry.name.to_string(),
                options,
            };
            let mut cost = ModelCost::of(&spec, args.classes as usize, [3, 32, 32], &device)?;
            cost.name.push_str(flags);
            costs.push(cost);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&costs)?);
        return Ok(());
    }
    println!(
        "{:<32} {:>12} {:>14}  description (32x32 RGB input, {} classes)",
        "model", "params", "forward FLOPs", args.classes
    );
    for c in costs {
        println!(
            "{:<32} {:>12} {:>13.1}M  {}",
            c.name,
            c.params,
            c.flops as f64 / 1e6,
            c.summary
        );
    }
    Ok(())
}
