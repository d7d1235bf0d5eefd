//! The numbers of the report, computed from the runs: the accuracy table (the study's Table 1),
//! model costs, training curves (Figures 3 and 4), and each model against its twin.

use std::collections::HashMap;

use burn::tensor::Device;

use super::runs::{Collection, RunRecord};
use crate::stats::{self, BootstrapCi, McNemar, MeanStd};
use crate::error::Result;
use crate::model::{ModelSpec, registry};

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
    /// Seconds per epoch (training and validation), mean and std over every epoch of every run.
    pub seconds_per_epoch: Option<MeanStd>,
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
    /// Difference model - twin (fraction) with its bootstrap interval.
    pub difference: BootstrapCi,
    /// McNemar's test over every (seed, image) pair.
    pub mcnemar: McNemar,
    /// Seeds on which the model scored higher than its twin.
    pub seeds_won: usize,
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
    /// Bootstrap settings used.
    pub replicates: usize,
    /// Confidence level.
    pub level: f64,
}

/// Runs of one (model, dataset, recipe).
fn group<'a>(c: &'a Collection, model: &str, dataset: &str, recipe: &str) -> Vec<&'a RunRecord> {
    c.runs.iter().filter(|r| r.model == model && r.dataset == dataset && r.recipe == recipe).collect()
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
            let all: Vec<&RunRecord> = c.runs.iter().filter(|r| r.model == model && r.recipe == recipe).collect();
            let mut epochs: Vec<u64> = all.iter().map(|r| r.manifest.config.epochs).collect();
            epochs.dedup();
            let (cells, unfinished) = c
                .datasets
                .iter()
                .map(|d| {
                    let runs = group(c, &model, d, &recipe);
                    let accs: Vec<f64> = runs.iter().filter_map(|r| r.summary.as_ref()).map(|s| 100.0 * s.test.accuracy).collect();
                    (stats::mean_std(&accs), runs.iter().filter(|r| !r.finished()).count())
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
            let key = format!("{}|{classes}|{shape:?}", serde_json::to_string(&spec).unwrap_or_default());
            let cost = *cache
                .entry(key)
                .or_insert_with(|| registry::cost(&spec, classes, shape, &device).ok().map(|c| (c.params, c.flops)));
            let seconds: Vec<f64> = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.seconds)).collect();
            let mut speeds: Vec<f64> = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.images_per_second)).collect();
            speeds.sort_by(f64::total_cmp);
            rows.push(CostRow {
                model: model.clone(),
                recipe: recipe.clone(),
                dataset: dataset.clone(),
                params: cost.map(|c| c.0),
                flops: cost.map(|c| c.1),
                seconds_per_epoch: stats::mean_std(&seconds),
                images_per_second: (!speeds.is_empty()).then(|| speeds[speeds.len() / 2]),
                train_images: first.manifest.data.train_images,
                runs: runs.len(),
            });
        }
    }
    rows
}

/// Mean and std per epoch of `value` over `runs`.
fn curve(runs: &[&RunRecord], value: impl Fn(&crate::train::metrics::EpochMetrics) -> Option<f64>) -> Curve {
    let last = runs.iter().flat_map(|r| r.metrics.iter().map(|m| m.epoch)).max().unwrap_or(0);
    let mut out = Curve::default();
    for epoch in 1..=last {
        let values: Vec<f64> = runs.iter().filter_map(|r| r.metrics.iter().find(|m| m.epoch == epoch).and_then(&value)).collect();
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
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
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
                    let runs: Vec<&RunRecord> = runs.into_iter().filter(|r| !r.metrics.is_empty()).collect();
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
    Ok((predictions.iter().map(|p| p.label).collect(), predictions.iter().map(|p| p.label == p.prediction).collect()))
}

/// Model against twin, paired by seed and test image.
fn compare(c: &Collection, model: &str, twin: &str, dataset: &str, recipe: &str, options: &StatsOptions) -> std::result::Result<Option<Comparison>, String> {
    let mine: Vec<&RunRecord> = group(c, model, dataset, recipe).into_iter().filter(|r| r.finished()).collect();
    let theirs: Vec<&RunRecord> = group(c, twin, dataset, recipe).into_iter().filter(|r| r.finished()).collect();
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
            format!("no seed finished for both (model seeds {:?}, twin seeds {:?})", mine.iter().map(|r| r.seed).collect::<Vec<_>>(), theirs.iter().map(|r| r.seed).collect::<Vec<_>>())
        });
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut labels: Option<Vec<u16>> = None;
    for (a, b) in &pairs {
        if a.manifest.data.fingerprints[2] != b.manifest.data.fingerprints[2] {
            return Err(format!("seed {}: {} and {} were tested on different test sets", a.seed, a.id, b.id));
        }
        let (la, ca) = correctness(a).map_err(|e| e.to_string())?;
        let (lb, cb) = correctness(b).map_err(|e| e.to_string())?;
        if la != lb || labels.as_ref().is_some_and(|l| *l != la) {
            return Err(format!("seed {}: the predictions of {} and {} are not for the same test images", a.seed, a.id, b.id));
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
    let acc = |runs: &[Vec<bool>]| 100.0 * runs.iter().map(|r| r.iter().filter(|&&x| x).count() as f64 / r.len() as f64).sum::<f64>() / runs.len() as f64;
    let seeds_won = first
        .iter()
        .zip(&second)
        .filter(|(x, y)| x.iter().filter(|&&v| v).count() > y.iter().filter(|&&v| v).count())
        .count();
    Ok(Some(Comparison {
        model: model.to_string(),
        twin: twin.to_string(),
        dataset: dataset.to_string(),
        recipe: recipe.to_string(),
        seeds: pairs.iter().map(|(a, _)| a.seed).collect(),
        images: first[0].len(),
        model_accuracy: acc(&first),
        twin_accuracy: acc(&second),
        difference: stats::paired_bootstrap(&first, &second, options.replicates, options.level, options.seed),
        mcnemar: stats::mcnemar(b, cc),
        seeds_won,
    }))
}

/// Computes everything the report shows.
pub fn analyse(c: &Collection, options: &StatsOptions) -> Analysis {
    let mut comparisons = Vec::new();
    let mut skipped = Vec::new();
    for m in &c.models {
        let Some(twin) = &m.twin else { continue };
        for dataset in &c.datasets {
            for recipe in &c.recipes {
                match compare(c, &m.label, twin, dataset, recipe, options) {
                    Ok(Some(cmp)) => comparisons.push(cmp),
                    Ok(None) => {}
                    Err(reason) => skipped.push(Skipped {
                        model: m.label.clone(),
                        twin: twin.clone(),
                        dataset: dataset.clone(),
                        recipe: recipe.clone(),
                        reason,
                    }),
                }
            }
        }
    }
    Analysis {
        datasets: c.datasets.clone(),
        accuracy: accuracy_table(c),
        costs: cost_table(c),
        figures: figures(c),
        comparisons,
        skipped,
        replicates: options.replicates,
        level: options.level,
    }
}
