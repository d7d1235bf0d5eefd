//! The numbers of the report, computed from the runs: the accuracy table (the study's Table 1),
//! model costs, training curves (Figures 3 and 4), each model against its twins (the plain one
//! and the compute-matched one) with what each verdict is worth (variance split, power,
//! Holm-Bonferroni over the report), and the factorial analysis of crossed features.

use std::collections::HashMap;

use burn::tensor::Device;

use super::runs::{Collection, RunRecord};
use crate::error::Result;
use crate::model::{ModelCost, ModelSpec};
use crate::stats::factorial::{self, FactorialFit};
use crate::stats::multiplicity::{self, Verdict};
use crate::stats::power::{self, PowerAnalysis, VarianceSplit};
use crate::stats::seed_test::{self, SignFlip};
use crate::stats::{self, BootstrapCi, MeanStd};

/// Settings of the statistics.
#[derive(Clone, Copy, Debug)]
pub struct StatsOptions {
    /// Bootstrap replicates.
    pub replicates: usize,
    /// Confidence level of the intervals.
    pub level: f64,
    /// Seed of the bootstrap's draws (the report is reproducible).
    pub seed: u64,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            replicates: 10_000,
            level: 0.95,
            seed: 0,
        }
    }
}

/// One row of the accuracy table: a model trained with a recipe, test accuracy per dataset.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccuracyRow {
    /// Model label.
    pub model: String,
    /// Recipe label.
    pub recipe: String,
    /// Epochs of its runs (`None` if they differ).
    pub epochs: Option<u64>,
    /// Test accuracy in percent over the finished seeds, per dataset (in the collection's
    /// dataset order); `None` where no run finished.
    pub cells: Vec<Option<MeanStd>>,
    /// Runs started but not finished, per dataset.
    pub unfinished: Vec<usize>,
}

/// Cost of a model on a dataset with a recipe.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CostRow {
    /// Model label.
    pub model: String,
    /// Recipe label.
    pub recipe: String,
    /// Dataset label.
    pub dataset: String,
    /// Trainable parameters (`None` if this build cannot construct the model).
    pub params: Option<usize>,
    /// Forward FLOPs per image.
    pub flops: Option<u64>,
    /// Seconds per epoch (training and validation), the median over every epoch of every run:
    /// a run paused for a benchmark, or one that shared its machine for a while, leaves a few
    /// epochs hours long, which would swamp a mean.
    pub seconds_per_epoch: Option<f64>,
    /// Median training images per second over those epochs.
    pub images_per_second: Option<f64>,
    /// Training images per epoch.
    pub train_images: usize,
    /// Runs counted.
    pub runs: usize,
}

/// A curve averaged over seeds: per epoch, mean and std.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Curve {
    /// Epochs (1-based) with at least one value.
    pub epochs: Vec<usize>,
    /// Mean over the seeds that reached the epoch.
    pub mean: Vec<f64>,
    /// Sample std over them (0 for one seed).
    pub std: Vec<f64>,
}

/// One model's curves in a figure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelCurves {
    /// Model label.
    pub model: String,
    /// Seeds averaged.
    pub seeds: usize,
    /// Training accuracy (percent).
    pub train_accuracy: Curve,
    /// Validation accuracy (percent).
    pub val_accuracy: Curve,
    /// Training loss.
    pub train_loss: Curve,
    /// Validation loss.
    pub val_loss: Curve,
}

/// The training curves of every model on one dataset with one recipe.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CurveFigure {
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// File stem: `curves-<dataset>-<recipe>`.
    pub stem: String,
    /// One entry per model, in model order.
    pub models: Vec<ModelCurves>,
}

/// A model against its twin on one dataset with one recipe, paired by seed and test image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Model label.
    pub model: String,
    /// Twin label.
    pub twin: String,
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Seeds both have finished.
    pub seeds: Vec<u64>,
    /// Test images per run.
    pub images: usize,
    /// Mean test accuracy of the model over those seeds (percent).
    pub model_accuracy: f64,
    /// Mean test accuracy of the twin over those seeds (percent).
    pub twin_accuracy: f64,
    /// `plain` for the grid's twin, `params-matched` / `flops-matched` for a compute-matched one.
    pub twin_kind: String,
    /// Difference model - twin (fraction) with its bootstrap interval.
    pub difference: BootstrapCi,
    /// The verdict of the bootstrap interval.
    pub verdict: Verdict,
    /// The bootstrap p-value after Holm-Bonferroni over every comparison of the report.
    pub holm_p: f64,
    /// The verdict at `1 - level` on the Holm-adjusted p-value.
    pub holm_verdict: Verdict,
    /// Discordant (seed, image) cells over all seeds (descriptive; not a test).
    pub discordant: Discordant,
    /// The exact sign-flip permutation test over seeds of the per-seed differences.
    pub seed_test: SignFlip,
    /// Seed-to-seed spread against the test set's sampling error, model and twin.
    pub variance: [VarianceSplit; 2],
    /// Seeds needed, and the difference the seeds at hand detect.
    pub power: PowerAnalysis,
    /// Seeds on which the model scored higher than its twin.
    pub seeds_won: usize,
}

/// Discordant cells: images only the model gets right (`b`) or only the twin (`c`), summed
/// over seeds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Discordant {
    /// Only the model right.
    pub b: u64,
    /// Only the twin right.
    pub c: u64,
}

/// The factorial analysis of the crossed features of one dataset and recipe.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Factorial {
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Factors and their base levels.
    pub factors: Vec<(String, String)>,
    /// Models in the fit.
    pub models: Vec<String>,
    /// Models left out (other widths or options than the plain CNN's).
    pub left_out: Vec<String>,
    /// The fit (accuracy in percent).
    pub fit: FactorialFit,
}

/// A comparison that could not be made, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// Model label.
    pub model: String,
    /// Twin label.
    pub twin: String,
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Why.
    pub reason: String,
}

/// Everything the report shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Analysis {
    /// Dataset labels (table columns).
    pub datasets: Vec<String>,
    /// Accuracy table rows.
    pub accuracy: Vec<AccuracyRow>,
    /// Cost rows.
    pub costs: Vec<CostRow>,
    /// Figures.
    pub figures: Vec<CurveFigure>,
    /// Model against twin.
    pub comparisons: Vec<Comparison>,
    /// Comparisons that could not be made.
    pub skipped: Vec<Skipped>,
    /// Factorial analyses of crossed features.
    pub factorial: Vec<Factorial>,
    /// Bootstrap settings used.
    pub replicates: usize,
    /// Confidence level.
    pub level: f64,
}

/// Runs of one (model, dataset, recipe).
fn group<'a>(c: &'a Collection, model: &str, dataset: &str, recipe: &str) -> Vec<&'a RunRecord> {
    c.runs
        .iter()
        .filter(|r| r.model == model && r.dataset == dataset && r.recipe == recipe)
        .collect()
}

/// The (model, recipe) pairs that have runs, in display order.
fn model_recipes(c: &Collection) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in &c.models {
        for r in &c.recipes {
            if c.runs.iter().any(|x| x.model == m.label && x.recipe == *r) {
                out.push((m.label.clone(), r.clone()));
            }
        }
    }
    out
}

fn accuracy_table(c: &Collection) -> Vec<AccuracyRow> {
    model_recipes(c)
        .into_iter()
        .map(|(model, recipe)| {
            let all: Vec<&RunRecord> = c
                .runs
                .iter()
                .filter(|r| r.model == model && r.recipe == recipe)
                .collect();
            let mut epochs: Vec<u64> = all.iter().map(|r| r.manifest.config.epochs).collect();
            epochs.dedup();
            let (cells, unfinished) = c
                .datasets
                .iter()
                .map(|d| {
                    let runs = group(c, &model, d, &recipe);
                    let accs: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.summary.as_ref())
                        .map(|s| 100.0 * s.test.accuracy)
                        .collect();
                    (
                        stats::mean_std(&accs),
                        runs.iter().filter(|r| !r.finished()).count(),
                    )
                })
                .unzip();
            AccuracyRow {
                model,
                recipe,
                epochs: (epochs.len() == 1).then(|| epochs[0]),
                cells,
                unfinished,
            }
        })
        .collect()
}

fn cost_table(c: &Collection) -> Vec<CostRow> {
    let device = Device::flex();
    let mut cache: HashMap<String, Option<(usize, u64)>> = HashMap::new();
    let mut rows = Vec::new();
    for (model, recipe) in model_recipes(c) {
        for dataset in &c.datasets {
            let runs = group(c, &model, dataset, &recipe);
            let Some(first) = runs.first() else { continue };
            let spec: ModelSpec = first.manifest.config.model_spec();
            let classes = first.manifest.data.classes.len();
            let shape = first.manifest.data.image_shape;
            let key = format!(
                "{}|{classes}|{shape:?}",
                serde_json::to_string(&spec).unwrap_or_default()
            );
            let cost = *cache.entry(key).or_insert_with(|| {
                ModelCost::of(&spec, classes, shape, &device)
                    .ok()
                    .map(|c| (c.params, c.flops))
            });
            let seconds = runs
                .iter()
                .flat_map(|r| r.metrics.iter().map(|m| m.seconds));
            let speeds = runs
                .iter()
                .flat_map(|r| r.metrics.iter().map(|m| m.images_per_second));
            rows.push(CostRow {
                model: model.clone(),
                recipe: recipe.clone(),
                dataset: dataset.clone(),
                params: cost.map(|c| c.0),
                flops: cost.map(|c| c.1),
                seconds_per_epoch: stats::median(seconds.collect()),
                images_per_second: stats::median(speeds.collect()),
                train_images: first.manifest.data.train_images,
                runs: runs.len(),
            });
        }
    }
    rows
}

/// Mean and std per epoch of `value` over `runs`.
fn curve(
    runs: &[&RunRecord],
    value: impl Fn(&crate::train::metrics::EpochMetrics) -> Option<f64>,
) -> Curve {
    let last = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.epoch))
        .max()
        .unwrap_or(0);
    let mut out = Curve::default();
    for epoch in 1..=last {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.metrics.iter().find(|m| m.epoch == epoch).and_then(&value))
            .collect();
        if let Some(ms) = stats::mean_std(&values) {
            out.epochs.push(epoch);
            out.mean.push(ms.mean);
            out.std.push(ms.std);
        }
    }
    out
}

/// Folder-safe form of a label.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn figures(c: &Collection) -> Vec<CurveFigure> {
    let mut out = Vec::new();
    for dataset in &c.datasets {
        for recipe in &c.recipes {
            let models: Vec<ModelCurves> = c
                .models
                .iter()
                .filter_map(|m| {
                    let runs = group(c, &m.label, dataset, recipe);
                    let runs: Vec<&RunRecord> =
                        runs.into_iter().filter(|r| !r.metrics.is_empty()).collect();
                    (!runs.is_empty()).then(|| ModelCurves {
                        model: m.label.clone(),
                        seeds: runs.len(),
                        train_accuracy: curve(&runs, |m| Some(100.0 * m.train_accuracy)),
                        val_accuracy: curve(&runs, |m| m.val_accuracy.map(|a| 100.0 * a)),
                        train_loss: curve(&runs, |m| Some(m.train_loss)),
                        val_loss: curve(&runs, |m| m.val_loss),
                    })
                })
                .collect();
            if !models.is_empty() {
                out.push(CurveFigure {
                    dataset: dataset.clone(),
                    recipe: recipe.clone(),
                    stem: format!("curves-{}-{}", slug(dataset), slug(recipe)),
                    models,
                });
            }
        }
    }
    out
}

/// Per-image correctness of a finished run, checked against the twin's test set.
fn correctness(run: &RunRecord) -> Result<(Vec<u16>, Vec<bool>)> {
    let predictions = run.predictions()?;
    Ok((
        predictions.iter().map(|p| p.label).collect(),
        predictions
            .iter()
            .map(|p| p.label == p.prediction)
            .collect(),
    ))
}

/// Model against twin, paired by seed and test image.
fn compare(
    c: &Collection,
    model: &str,
    (twin, twin_kind): (&str, &str),
    dataset: &str,
    recipe: &str,
    options: &StatsOptions,
) -> std::result::Result<Option<Comparison>, String> {
    let mine: Vec<&RunRecord> = group(c, model, dataset, recipe)
        .into_iter()
        .filter(|r| r.finished())
        .collect();
    let theirs: Vec<&RunRecord> = group(c, twin, dataset, recipe)
        .into_iter()
        .filter(|r| r.finished())
        .collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<(&RunRecord, &RunRecord)> = mine
        .iter()
        .filter_map(|a| theirs.iter().find(|b| b.seed == a.seed).map(|b| (*a, *b)))
        .collect();
    if pairs.is_empty() {
        return Err(if theirs.is_empty() {
            format!("no finished run of {twin}")
        } else {
            format!(
                "no seed finished for both (model seeds {:?}, twin seeds {:?})",
                mine.iter().map(|r| r.seed).collect::<Vec<_>>(),
                theirs.iter().map(|r| r.seed).collect::<Vec<_>>()
            )
        });
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut labels: Option<Vec<u16>> = None;
    for (a, b) in &pairs {
        if a.manifest.data.fingerprints[2] != b.manifest.data.fingerprints[2] {
            return Err(format!(
                "seed {}: {} and {} were tested on different test sets",
                a.seed, a.id, b.id
            ));
        }
        let (la, ca) = correctness(a).map_err(|e| e.to_string())?;
        let (lb, cb) = correctness(b).map_err(|e| e.to_string())?;
        if la != lb || labels.as_ref().is_some_and(|l| *l != la) {
            return Err(format!(
                "seed {}: the predictions of {} and {} are not for the same test images",
                a.seed, a.id, b.id
            ));
        }
        labels = Some(la);
        first.push(ca);
        second.push(cb);
    }
    let (mut b, mut cc) = (0, 0);
    for (x, y) in first.iter().zip(&second) {
        let (db, dc) = stats::discordant(x, y);
        b += db;
        cc += dc;
    }
    let accuracies = |runs: &[Vec<bool>]| -> Vec<f64> {
        runs.iter()
            .map(|r| r.iter().filter(|&&x| x).count() as f64 / r.len() as f64)
            .collect()
    };
    let (mine_acc, theirs_acc) = (accuracies(&first), accuracies(&second));
    let acc = |a: &[f64]| 100.0 * a.iter().sum::<f64>() / a.len() as f64;
    let seeds_won = mine_acc
        .iter()
        .zip(&theirs_acc)
        .filter(|(x, y)| x > y)
        .count();
    // Per-seed differences in percentage points: the seeds are the replicates.
    let differences: Vec<f64> = mine_acc
        .iter()
        .zip(&theirs_acc)
        .map(|(a, b)| 100.0 * (a - b))
        .collect();
    let images = first[0].len();
    let seeds = pairs.len() as f64;
    let difference = stats::paired_bootstrap(
        &first,
        &second,
        options.replicates,
        options.level,
        options.seed,
    );
    Ok(Some(Comparison {
        model: model.to_string(),
        twin: twin.to_string(),
        dataset: dataset.to_string(),
        recipe: recipe.to_string(),
        seeds: pairs.iter().map(|(a, _)| a.seed).collect(),
        images,
        model_accuracy: acc(&mine_acc),
        twin_accuracy: acc(&theirs_acc),
        twin_kind: twin_kind.to_string(),
        verdict: Verdict::of_interval(difference.low, difference.high),
        // Filled in by `analyse` once every comparison is known.
        holm_p: difference.p_value,
        holm_verdict: Verdict::of_interval(difference.low, difference.high),
        difference,
        discordant: Discordant { b, c: cc },
        seed_test: seed_test::sign_flip(&differences),
        variance: [
            power::variance_split(&mine_acc, images),
            power::variance_split(&theirs_acc, images),
        ],
        power: power::power_analysis(
            &differences,
            power::paired_test_se(b as f64 / seeds, cc as f64 / seeds, images),
        ),
        seeds_won,
    }))
}

/// Computes everything the report shows.
pub fn analyse(c: &Collection, options: &StatsOptions) -> Analysis {
    let mut comparisons = Vec::new();
    let mut skipped = Vec::new();
    for m in &c.models {
        // The plain twin, then the compute-matched one.
        let kind = |label: &str| {
            if label.ends_with("-twin-params") {
                "params-matched"
            } else {
                "flops-matched"
            }
        };
        let twins: Vec<(&str, &str)> = m
            .twin
            .iter()
            .map(|t| (t.as_str(), "plain"))
            .chain(m.matched.iter().map(|t| (t.as_str(), kind(t))))
            .collect();
        for (twin, twin_kind) in twins {
            for dataset in &c.datasets {
                for recipe in &c.recipes {
                    match compare(c, &m.label, (twin, twin_kind), dataset, recipe, options) {
                        Ok(Some(cmp)) => comparisons.push(cmp),
                        Ok(None) => {}
                        Err(reason) => skipped.push(Skipped {
                            model: m.label.clone(),
                            twin: twin.to_string(),
                            dataset: dataset.clone(),
                            recipe: recipe.clone(),
                            reason,
                        }),
                    }
                }
            }
        }
    }
    // Holm-Bonferroni over every comparison of the report, on the bootstrap p-values (the test
    // behind the verdicts): a verdict survives when its adjusted p is below 1 - level.
    let adjusted = multiplicity::holm(
        &comparisons
            .iter()
            .map(|c| c.difference.p_value)
            .collect::<Vec<_>>(),
    );
    for (cmp, p) in comparisons.iter_mut().zip(adjusted) {
        cmp.holm_p = p;
        cmp.holm_verdict = Verdict::of_p_value(p, 1.0 - options.level, cmp.difference.difference);
    }
    Analysis {
        datasets: c.datasets.clone(),
        accuracy: accuracy_table(c),
        costs: cost_table(c),
        figures: figures(c),
        comparisons,
        skipped,
        factorial: factorials(c),
        replicates: options.replicates,
        level: options.level,
    }
}

/// The factors of a CNN-family model: its attention (none, attn1-3), channel attention,
/// lateral connections and conv; `None` for a baseline.
fn factor_levels(spec: &ModelSpec) -> Option<[String; 4]> {
    if !["cnn", "attn1", "attn2", "attn3"].contains(&spec.name.as_str()) {
        return None;
    }
    let o = &spec.options;
    let attention = if spec.name == "cnn" {
        "none".to_string()
    } else {
        spec.name.clone()
    };
    let channel = o
        .channel_attn
        .map_or("none".to_string(), |k| format!("{k:?}").to_lowercase());
    let lateral = format!("{:?}", o.lateral).to_lowercase();
    let conv = format!("{:?}", o.conv).to_lowercase();
    Some([attention, channel, lateral, conv])
}

/// What a model is besides its factors (widths, head, pooling, depth): models compared in one
/// fit must agree on it.
fn rest_of(spec: &ModelSpec) -> String {
    let d = crate::model::ModelOptions::default();
    let o = crate::model::ModelOptions {
        channel_attn: None,
        lateral: d.lateral,
        conv: d.conv,
        attn_impl: d.attn_impl,
        heads: d.heads,
        attn_reduction: d.attn_reduction,
        attn_gamma: d.attn_gamma,
        attn_shared: d.attn_shared,
        attn_shared_width: d.attn_shared_width,
        attn_dim: d.attn_dim,
        ..spec.options.clone()
    };
    serde_json::to_string(&o).unwrap_or_default()
}

const FACTORS: [(&str, &str); 4] = [
    ("attention", "none"),
    ("channel-attn", "none"),
    ("lateral", "none"),
    ("conv", "plain"),
];

/// Main effects and two-way interactions of the features crossed in each (dataset, recipe):
/// computed when at least two factors vary and some model combines two features.
fn factorials(c: &Collection) -> Vec<Factorial> {
    let mut out = Vec::new();
    for dataset in &c.datasets {
        for recipe in &c.recipes {
            let runs: Vec<&RunRecord> = c
                .runs
                .iter()
                .filter(|r| r.dataset == *dataset && r.recipe == *recipe && r.finished())
                .collect();
            // The plain CNN's other options define the family of the fit.
            let Some(base) = runs
                .iter()
                .map(|r| r.manifest.config.model_spec())
                .find(|s| {
                    factor_levels(s)
                        .is_some_and(|l| l.iter().zip(FACTORS).all(|(l, (_, b))| l == b))
                })
            else {
                continue;
            };
            let family = rest_of(&base);
            let (mut observations, mut models, mut left_out) =
                (Vec::new(), Vec::<String>::new(), Vec::<String>::new());
            for r in &runs {
                let spec = r.manifest.config.model_spec();
                let Some(levels) = factor_levels(&spec) else {
                    continue;
                };
                if rest_of(&spec) != family {
                    if !left_out.contains(&r.model) {
                        left_out.push(r.model.clone());
                    }
                    continue;
                }
                if !models.contains(&r.model) {
                    models.push(r.model.clone());
                }
                let accuracy = 100.0 * r.summary.as_ref().map_or(0.0, |s| s.test.accuracy);
                observations.push((levels, r.seed, accuracy));
            }
            // Keep the factors that vary; a factorial needs two, and a model combining them.
            let varying: Vec<usize> = (0..FACTORS.len())
                .filter(|&f| observations.iter().any(|(l, _, _)| l[f] != FACTORS[f].1))
                .collect();
            let crossed = observations
                .iter()
                .any(|(l, _, _)| varying.iter().filter(|&&f| l[f] != FACTORS[f].1).count() >= 2);
            if varying.len() < 2 || !crossed {
                continue;
            }
            let factors: Vec<factorial::Factor> = varying
                .iter()
                .map(|&f| factorial::Factor {
                    name: FACTORS[f].0.to_string(),
                    base: FACTORS[f].1.to_string(),
                })
                .collect();
            let obs: Vec<factorial::Observation> = observations
                .iter()
                .map(|(l, seed, y)| factorial::Observation {
                    levels: varying.iter().map(|&f| l[f].clone()).collect(),
                    block: seed.to_string(),
                    value: *y,
                })
                .collect();
            if let Ok(fit) = factorial::fit(&factors, &obs, 0.95) {
                out.push(Factorial {
                    dataset: dataset.clone(),
                    recipe: recipe.clone(),
                    factors: factors
                        .iter()
                        .map(|f| (f.name.clone(), f.base.clone()))
                        .collect(),
                    models,
                    left_out,
                    fit,
                });
            }
        }
    }
    out
}
