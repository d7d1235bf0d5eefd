//! Compute-matched twins: the plain CNN whose conv widths, all scaled by one factor and rounded
//! to multiples of 8, cost what a model of the CNN family costs (its parameters or its forward
//! FLOPs, within [`TOLERANCE`]). A model that beats its plain twin and its matched twin gains
//! from its feature, not only from its extra compute.
//!
//! The twin is the study's plain CNN: no attention of either kind, no lateral connections, the
//! plain 3x3 conv, one unit per stage; it keeps the model's pooling, classifier head and
//! dropout, and scales the model's `--widths`.

use burn::tensor::Device;

use super::table;
use super::{ModelCost, ModelOptions, ModelSpec, NetworkConfig};
use crate::error::{Error, Result};

/// What a twin matches (`match = "params"|"flops"` in a grid, `visionnet models --by`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum MatchBy {
    /// Trainable parameters.
    Params,
    /// Forward FLOPs per image.
    Flops,
}

impl MatchBy {
    /// Its name in grids and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchBy::Params => "params",
            MatchBy::Flops => "flops",
        }
    }

    /// Parses a grid's `match` value; the error lists the valid ones.
    pub fn parse(text: &str) -> std::result::Result<MatchBy, String> {
        match text {
            "params" => Ok(MatchBy::Params),
            "flops" => Ok(MatchBy::Flops),
            other => Err(format!("'{other}' is not a match; valid: params, flops")),
        }
    }
}

/// Train flags a matched twin does not take from its model: the model and its widths (replaced),
/// and every option of the features the twin leaves out.
pub const DROPPED_FLAGS: [&str; 15] = [
    "model",
    "widths",
    "attn-impl",
    "heads",
    "attn-reduction",
    "attn-gamma",
    "attn-shared",
    "attn-shared-width",
    "attn-dim",
    "stage-depth",
    "lateral",
    "conv",
    "channel-attn",
    "form",
    "resize",
];

/// Largest relative difference between the twin's cost and the model's.
pub const TOLERANCE: f64 = 0.03;

/// Width factors tried: 1/8 to 16, in steps of 0.25%.
const FACTORS: (f64, f64, f64) = (0.125, 16.0, 1.0025);

/// A matched twin and both costs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Matched {
    /// What is matched.
    pub by: MatchBy,
    /// The smallest factor giving these widths.
    pub factor: f64,
    /// The model's conv widths.
    pub model_widths: Vec<usize>,
    /// The twin's conv widths.
    pub widths: Vec<usize>,
    /// The model's trainable parameters.
    pub model_params: usize,
    /// Its forward FLOPs per image.
    pub model_flops: u64,
    /// The twin's trainable parameters.
    pub twin_params: usize,
    /// Its forward FLOPs per image.
    pub twin_flops: u64,
    /// `(twin - model) / model` of the matched cost.
    pub relative_error: f64,
}

/// The plain-CNN options of `o`'s twin with conv widths `widths`.
pub fn twin_options(o: &ModelOptions, widths: Vec<usize>) -> ModelOptions {
    let d = ModelOptions::default();
    ModelOptions {
        widths,
        pool: o.pool.clone(),
        hidden: o.hidden.clone(),
        dropout: o.dropout,
        ..d
    }
}

/// `widths` scaled by `factor`, each rounded to the nearest multiple of 8 (at least 8).
pub fn scale_widths(widths: &[usize], factor: f64) -> Vec<usize> {
    widths
        .iter()
        .map(|&w| (((w as f64 * factor) / 8.0).round() as usize).max(1) * 8)
        .collect()
}

/// Parameters and FLOPs of `spec`.
fn costs(
    spec: &ModelSpec,
    classes: usize,
    input: [usize; 3],
    device: &Device,
) -> Result<(usize, u64)> {
    let c = ModelCost::of(spec, classes, input, device)?;
    Ok((c.params, c.flops))
}

/// The plain CNN matching `spec` (a model of the CNN family) by `by` for `classes` classes and
/// `[c, h, w]` inputs; refused, with the closest match found, when no factor lands within
/// [`TOLERANCE`].
pub fn match_twin(
    spec: &ModelSpec,
    by: MatchBy,
    classes: usize,
    input: [usize; 3],
    device: &Device,
) -> Result<Matched> {
    let config = table::network_config(spec, classes, input)?;
    if !matches!(config, NetworkConfig::Cnn(_)) {
        return Err(Error::invalid(
            "match",
            format!(
                "applies to the CNN family (cnn, attn1-3 and their options), not to the baseline '{}'",
                spec.name
            ),
        ));
    }
    let (model_params, model_flops) = costs(spec, classes, input, device)?;
    let target = match by {
        MatchBy::Params => model_params as f64,
        MatchBy::Flops => model_flops as f64,
    };
    let base = &spec.options.widths;
    let mut best: Option<Matched> = None;
    let mut last: Option<Vec<usize>> = None;
    let mut factor = FACTORS.0;
    while factor <= FACTORS.1 {
        let widths = scale_widths(base, factor);
        if last.as_ref() != Some(&widths) {
            let twin = ModelSpec {
                name: "cnn".to_string(),
                options: twin_options(&spec.options, widths.clone()),
            };
            let (twin_params, twin_flops) = costs(&twin, classes, input, device)?;
            let got = match by {
                MatchBy::Params => twin_params as f64,
                MatchBy::Flops => twin_flops as f64,
            };
            let relative_error = (got - target) / target;
            if best
                .as_ref()
                .is_none_or(|b| relative_error.abs() < b.relative_error.abs())
            {
                best = Some(Matched {
                    by,
                    factor,
                    model_widths: base.clone(),
                    widths: widths.clone(),
                    model_params,
                    model_flops,
                    twin_params,
                    twin_flops,
                    relative_error,
                });
            }
            // Costs grow with the widths: once far above the target, larger factors only get worse.
            if relative_error > 1.0 {
                break;
            }
            last = Some(widths);
        }
        factor *= FACTORS.2;
    }
    let best = best.expect("at least one factor is tried");
    if best.relative_error.abs() > TOLERANCE {
        return Err(Error::invalid(
            "match",
            format!(
                "no width factor brings the plain cnn within {:.0}% of {}'s {}: the closest, x{:.3} (widths {:?}), has {} against {} ({:+.1}%)",
                100.0 * TOLERANCE,
                spec.name,
                by.as_str(),
                best.factor,
                best.widths,
                match by {
                    MatchBy::Params => best.twin_params as u64,
                    MatchBy::Flops => best.twin_flops,
                },
                target as u64,
                100.0 * best.relative_error
            ),
        ));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_scale_to_multiples_of_eight() {
        assert_eq!(
            scale_widths(&[32, 64, 128, 256], 1.0),
            vec![32, 64, 128, 256]
        );
        assert_eq!(
            scale_widths(&[32, 64, 128, 256], 1.1),
            vec![32, 72, 144, 280]
        );
        assert_eq!(scale_widths(&[32, 64], 0.01), vec![8, 8]);
        assert!(
            MatchBy::parse("macs")
                .unwrap_err()
                .contains("valid: params, flops")
        );
    }
}
