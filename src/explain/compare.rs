//! `visionnet compare`: two checkpoints on the same test set, as in the study's Figures 5 and 6.
//!
//! Both models classify every test image (each with its own input normalisation). The images
//! where A is right and B wrong, and the reverse, are counted and tested with McNemar's test;
//! for up to N of each kind (drawn at random, seeded) a gallery shows the input beside both
//! models' heat maps. Written to the output folder:
//!
//! - `a-right-b-wrong.png`, `b-right-a-wrong.png`: the galleries;
//! - `compare.json`: accuracies, the 2x2 table, McNemar's test, the samples shown;
//! - `disagreements.csv`: every test image where exactly one model is right;
//! - `maps/`: for each shown sample and model, the raw and normalised maps (`.npy`) and overlay;
//! - `stability.csv`: with several checkpoints per side (the grid's seeds), each image's map
//!   similarity within A, within B and between A and B, for the shown images and a sample of
//!   test images ([`super::stability`]); the summary, with intervals, in `compare.json`;
//! - `metrics.csv`: with `--metrics`, the faithfulness of A's and B's first checkpoints on the
//!   sample ([`super::faithfulness`]).
//!
//! The galleries and McNemar's test use the first checkpoint of each side.

use std::fs;
use std::path::PathBuf;

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::cam::CamMethod;
use super::faithfulness::{self, ImageScores, Metric, MetricOptions};
use super::figure::{BLACK, Figure, GREEN, GREY, Line, RED, Tile};
use super::gradcam::{CamMap, ClassTarget};
use super::heatmaps::{MethodMetrics, metrics_header, metrics_row, summarise};
use super::output::{MapFiles, prepare_out, write_map, write_png};
use super::overlay::{OverlayStyle, overlay, rgb_image, upscale};
use super::samples::{self, LoadedModel, Sample};
use super::stability::{MethodStability, PerImage, stability};
use crate::data::batches::mix_seed;
use crate::data::{Cifar100Labels, Dataset};
use crate::error::{Error, IoContext, Result};
use crate::io::{write_json, write_rows};
use crate::stats::{McNemar, format_p, mcnemar};
use crate::train::evaluate::evaluate;
use crate::train::metrics::Prediction;

/// What `visionnet compare` does.
#[derive(Clone, Debug)]
pub struct CompareRequest {
    /// Checkpoints of A and of B (checkpoint or run folders; several: seeds of one model).
    pub checkpoints: [Vec<PathBuf>; 2],
    /// Names of A and B on the figures (default: their run folders' names).
    pub names: Option<[String; 2]>,
    /// Dataset whose test set both are scored on.
    pub data: PathBuf,
    /// CIFAR-100 label set.
    pub labels: Cifar100Labels,
    /// Layers to explain: none (each model's default), one (both), or one per model.
    pub layers: Vec<String>,
    /// `top`, `label`, a class index or a class name.
    pub class: String,
    /// Methods; the first draws the galleries.
    pub methods: Vec<CamMethod>,
    /// Test images of the stability sample (0: none; None: [`DEFAULT_STABILITY`], or the whole
    /// test set where it is smaller).
    pub stability: Option<usize>,
    /// Faithfulness measures of the first checkpoints on the stability sample (none: skip).
    pub metrics: Vec<Metric>,
    /// Samples shown of each kind (at most).
    pub samples: usize,
    /// Seed of the choice of samples.
    pub seed: u64,
    /// Output folder (new or empty).
    pub out: PathBuf,
    /// How overlays are drawn.
    pub style: OverlayStyle,
    /// Samples per gallery row.
    pub columns: usize,
    /// Images per evaluation and gradient pass.
    pub batch_size: usize,
}

/// One model of the comparison.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CompareModel {
    /// Name on the figures.
    pub name: String,
    /// Checkpoint folder.
    pub checkpoint: PathBuf,
    /// Registry model.
    pub model: String,
    /// Layer explained.
    pub layer: String,
    /// Test accuracy.
    pub accuracy: f64,
}

/// The 2x2 table of correctness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Agreement {
    /// Both right.
    pub both_right: usize,
    /// A right, B wrong.
    pub a_only: usize,
    /// B right, A wrong.
    pub b_only: usize,
    /// Both wrong.
    pub both_wrong: usize,
}

impl Agreement {
    /// Counts the table from both models' predictions on the same images.
    pub fn count(a: &[Prediction], b: &[Prediction]) -> Self {
        let mut t = Agreement {
            both_right: 0,
            a_only: 0,
            b_only: 0,
            both_wrong: 0,
        };
        for (pa, pb) in a.iter().zip(b) {
            match (pa.prediction == pa.label, pb.prediction == pb.label) {
                (true, true) => t.both_right += 1,
                (true, false) => t.a_only += 1,
                (false, true) => t.b_only += 1,
                (false, false) => t.both_wrong += 1,
            }
        }
        t
    }
}

/// A sample shown in a gallery.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shown {
    /// Test image index.
    pub index: usize,
    /// True class.
    pub label: String,
    /// A's and B's predictions.
    pub predicted: [String; 2],
    /// A's and B's confidence in their predictions.
    pub confidence: [f32; 2],
    /// The classes the maps explain.
    pub target: [String; 2],
    /// A's and B's map files.
    pub files: [MapFiles; 2],
}

/// One gallery: a kind of disagreement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Gallery {
    /// `a-right-b-wrong` or `b-right-a-wrong`.
    pub kind: String,
    /// Test images of this kind.
    pub count: usize,
    /// The picture.
    pub png: PathBuf,
    /// The samples shown.
    pub shown: Vec<Shown>,
}

/// `compare.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CompareReport {
    /// The dataset.
    pub data: PathBuf,
    /// Test images scored.
    pub test_images: usize,
    /// A and B.
    pub models: [CompareModel; 2],
    /// Method of the galleries' maps.
    pub method: CamMethod,
    /// Every method.
    pub methods: Vec<CamMethod>,
    /// What the galleries' maps explain.
    pub target: String,
    /// Every checkpoint of A, then of B, with its test accuracy.
    pub checkpoints: [Vec<CompareModel>; 2],
    /// The seed-aware map comparison: each method on the shown images, then on the sample.
    pub stability: Vec<MethodStability>,
    /// Faithfulness of A's and B's first checkpoints on the sample, with `--metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<[Vec<MethodMetrics>; 2]>,
    /// The 2x2 table of the first checkpoints.
    pub agreement: Agreement,
    /// McNemar's test on the disagreements (`b`: A right and B wrong, `c`: the reverse).
    pub mcnemar: McNemar,
    /// The two galleries.
    pub galleries: [Gallery; 2],
}

/// A row of `disagreements.csv`.
#[derive(serde::Serialize)]
struct Disagreement<'a> {
    index: usize,
    kind: &'a str,
    label: &'a str,
    a_predicted: &'a str,
    a_confidence: f32,
    b_predicted: &'a str,
    b_confidence: f32,
}

/// Compares two checkpoints on a test set; writes galleries, `compare.json`,
/// `disagreements.csv` and the shown maps. Everything is checked before anything is written.
pub fn run(request: &CompareRequest, device: &Device) -> Result<CompareReport> {
    if request.checkpoints.iter().any(|side| side.is_empty()) {
        return Err(Error::invalid(
            "--checkpoint-a/--checkpoint-b",
            "give at least one checkpoint for each side",
        ));
    }
    if request.methods.is_empty() {
        return Err(Error::invalid("--method", "give at least one method"));
    }
    let mut sides: [Vec<LoadedModel>; 2] = [Vec::new(), Vec::new()];
    for (s, paths) in request.checkpoints.iter().enumerate() {
        for path in paths {
            sides[s].push(LoadedModel::load(path, device)?);
        }
    }
    check_alike(&sides)?;
    let models = [&sides[0][0], &sides[1][0]];
    let layer_of = |model: &LoadedModel, side: usize| -> Result<String> {
        match request.layers.as_slice() {
            [] => model.layer(None),
            [both] => model.layer(Some(both)),
            [a, b] => model.layer(Some(if side == 0 { a } else { b })),
            more => Err(Error::invalid(
                "--layer",
                format!(
                    "{} layers given; give one (for both models) or two (A's, then B's)",
                    more.len()
                ),
            )),
        }
    };
    let layers = [layer_of(models[0], 0)?, layer_of(models[1], 1)?];
    for (s, side) in sides.iter().enumerate() {
        for model in side {
            layer_of(model, s)?;
        }
    }
    if request.samples == 0 {
        return Err(Error::invalid("--samples", "must be at least 1"));
    }
    let data = Dataset::load(&request.data, request.labels)?;
    for model in sides.iter().flatten() {
        model.check_data(&data)?;
    }
    let stability_size = match request.stability {
        Some(n) if n > data.test.len() => {
            return Err(Error::invalid(
                "--stability",
                format!(
                    "{n} exceeds the {} test images of {}",
                    data.test.len(),
                    data.root.display()
                ),
            ));
        }
        Some(n) => n,
        None => DEFAULT_STABILITY.min(data.test.len()),
    };
    if request.out.exists() {
        prepare_out(&request.out)?; // refuses an old folder before the work; empty: kept
    }
    let classes = data.classes().to_vec();
    let target = ClassTarget::parse(&request.class, &classes)?;
    let names = request
        .names
        .clone()
        .unwrap_or_else(|| [models[0].short_name(), models[1].short_name()]);
    let method = request.methods[0];
    let explainers = [
        models[0].explainer(&layers[0], method)?,
        models[1].explainer(&layers[1], method)?,
    ];

    let mut predictions = Vec::with_capacity(2);
    let mut accuracies = [0.0; 2];
    let mut checkpoints: [Vec<CompareModel>; 2] = [Vec::new(), Vec::new()];
    for (s, side) in sides.iter().enumerate() {
        for (c, model) in side.iter().enumerate() {
            let (evaluation, preds) = evaluate(
                &model.model.valid(),
                &data.test,
                &model.meta.normalize,
                request.batch_size,
                device,
            )?;
            checkpoints[s].push(CompareModel {
                name: model.short_name(),
                checkpoint: model.checkpoint.clone(),
                model: model.meta.model.name.clone(),
                layer: layers[s].clone(),
                accuracy: evaluation.accuracy,
            });
            if c == 0 {
                accuracies[s] = evaluation.accuracy;
                predictions.push(preds);
            }
        }
    }
    let (pa, pb) = (&predictions[0], &predictions[1]);
    let agreement = Agreement::count(pa, pb);
    let test = mcnemar(agreement.a_only as u64, agreement.b_only as u64);
    let right = |p: &Prediction| p.prediction == p.label;
    let kinds: [(&str, Vec<usize>); 2] = [
        (
            "a-right-b-wrong",
            (0..pa.len())
                .filter(|&i| right(&pa[i]) && !right(&pb[i]))
                .collect(),
        ),
        (
            "b-right-a-wrong",
            (0..pa.len())
                .filter(|&i| !right(&pa[i]) && right(&pb[i]))
                .collect(),
        ),
    ];

    // Every map is computed before the output folder is touched.
    let mut computed = Vec::with_capacity(2);
    for (k, (_, indices)) in kinds.iter().enumerate() {
        let picked = pick(
            indices,
            request.samples,
            mix_seed(&[request.seed, k as u64]),
        );
        let samples: Vec<Sample> = picked
            .iter()
            .map(|&i| samples::test_sample(&data, i))
            .collect();
        let mut maps = Vec::with_capacity(2);
        for (m, model) in models.iter().enumerate() {
            maps.push(samples::explain_samples(
                &explainers[m],
                &samples,
                data.test.shape,
                &model.meta.normalize,
                &target,
                request.batch_size,
                device,
            )?);
        }
        computed.push((samples, maps));
    }

    // The seed-aware comparison and the measures, before anything is written.
    let shown: Vec<Sample> = computed
        .iter()
        .flat_map(|(samples, _)| samples.iter().cloned())
        .collect();
    let sample: Vec<Sample> = if stability_size > 0 {
        samples::from_test_set(&data, stability_size, mix_seed(&[request.seed, 503]))?
    } else {
        Vec::new()
    };
    let mut stabilities = Vec::new();
    let mut stability_rows: Vec<(CamMethod, &str, &Sample, [PerImage; 3])> = Vec::new();
    let mut rows_per = Vec::new();
    for &method in &request.methods {
        for (set, images) in [("shown", &shown), ("sample", &sample)] {
            if images.is_empty() {
                continue;
            }
            // Every checkpoint's maps of each image's true class.
            let by_label = ClassTarget::Label;
            let mut maps: [Vec<Vec<CamMap>>; 2] = [Vec::new(), Vec::new()];
            for (s, side) in sides.iter().enumerate() {
                for model in side {
                    let explainer = model
                        .explainer(&layers[s], method)?
                        .with_seed(mix_seed(&[request.seed, 71]));
                    maps[s].push(samples::explain_samples(
                        &explainer,
                        images,
                        data.test.shape,
                        &model.meta.normalize,
                        &by_label,
                        request.batch_size,
                        device,
                    )?);
                }
            }
            let [_, h, w] = data.test.shape;
            let (summary, per) = stability(
                method,
                set,
                &maps,
                [h, w],
                mix_seed(&[request.seed, 97, method as u64]),
            );
            stabilities.push(summary);
            rows_per.push((method, set, images, per));
        }
    }
    for (method, set, images, per) in &rows_per {
        for (i, sample) in images.iter().enumerate() {
            stability_rows.push((
                *method,
                set,
                sample,
                [vec![per[0][i]], vec![per[1][i]], vec![per[2][i]]],
            ));
        }
    }
    let metrics = if request.metrics.is_empty() || sample.is_empty() {
        None
    } else {
        let options = MetricOptions::new(
            request.metrics.clone(),
            request.batch_size.max(1) * 4,
            request.seed,
        );
        let ids: Vec<u64> = sample
            .iter()
            .map(|s| s.test_index.unwrap_or(0) as u64)
            .collect();
        let mut out: [Vec<MethodMetrics>; 2] = [Vec::new(), Vec::new()];
        let mut values: Vec<(usize, CamMethod, Vec<CamMap>, Vec<ImageScores>)> = Vec::new();
        for (s, model) in models.iter().enumerate() {
            let batch = samples::normalised_batch(&sample, data.test.shape, &model.meta.normalize);
            let images: Vec<Vec<f32>> = batch
                .images
                .chunks_exact(data.test.shape.iter().product())
                .map(|c| c.to_vec())
                .collect();
            for (m, &method) in request.methods.iter().enumerate() {
                let explainer = model
                    .explainer(&layers[s], method)?
                    .with_seed(mix_seed(&[request.seed, 71]));
                let started = std::time::Instant::now();
                let maps = samples::explain_samples(
                    &explainer,
                    &sample,
                    data.test.shape,
                    &model.meta.normalize,
                    &target,
                    request.batch_size,
                    device,
                )?;
                let seconds_maps = started.elapsed().as_secs_f64();
                let started = std::time::Instant::now();
                let scores = faithfulness::measure(
                    explainer.model(),
                    &images,
                    data.test.shape,
                    &maps,
                    &ids,
                    &options,
                    device,
                );
                let seconds = started.elapsed().as_secs_f64();
                out[s].push(summarise(
                    method,
                    &scores,
                    seconds_maps,
                    seconds,
                    mix_seed(&[request.seed, 89, s as u64, m as u64]),
                ));
                values.push((s, method, maps, scores));
            }
        }
        Some((out, values))
    };

    prepare_out(&request.out)?;
    let maps_dir = request.out.join("maps");
    fs::create_dir_all(&maps_dir).at(&maps_dir)?;
    let rows: Vec<Disagreement> = kinds
        .iter()
        .flat_map(|(kind, indices)| indices.iter().map(move |&i| (*kind, i)))
        .map(|(kind, i)| Disagreement {
            index: i,
            kind,
            label: &classes[pa[i].label as usize],
            a_predicted: &classes[pa[i].prediction as usize],
            a_confidence: pa[i].confidence,
            b_predicted: &classes[pb[i].prediction as usize],
            b_confidence: pb[i].confidence,
        })
        .collect();
    write_disagreements(&request.out.join("disagreements.csv"), &rows)?;
    if !stability_rows.is_empty() {
        write_stability(&request.out.join("stability.csv"), &stability_rows)?;
    }
    if let Some((_, values)) = &metrics {
        write_metrics(
            &request.out.join("metrics.csv"),
            &sample,
            &values[..],
            &classes,
        )?;
    }

    let compare_models: [CompareModel; 2] = std::array::from_fn(|m| CompareModel {
        name: names[m].clone(),
        checkpoint: models[m].checkpoint.clone(),
        model: models[m].meta.model.name.clone(),
        layer: layers[m].clone(),
        accuracy: accuracies[m],
    });
    let mut galleries = Vec::with_capacity(2);
    for ((kind, indices), (samples, maps)) in kinds.iter().zip(&computed) {
        let mut tiles = Vec::with_capacity(samples.len());
        let mut shown = Vec::with_capacity(samples.len());
        for (s, sample) in samples.iter().enumerate() {
            let image = rgb_image(&sample.pixels, data.test.shape);
            let mut panels = vec![upscale(&image, request.style.scale)];
            let mut files = Vec::with_capacity(2);
            for (m, tag) in ["a", "b"].iter().enumerate() {
                let map = &maps[m][s];
                let picture = overlay(&image, &map.normalised, map.shape, &request.style);
                files.push(write_map(
                    &maps_dir,
                    &format!("{}.{tag}", sample.id),
                    &map.raw,
                    &map.normalised,
                    map.shape,
                    &picture,
                )?);
                panels.push(picture);
            }
            let label = sample.label.expect("test samples are labelled");
            tiles.push(Tile {
                panels,
                caption: caption(label, [&maps[0][s], &maps[1][s]], &classes, &target),
            });
            let [fa, fb]: [MapFiles; 2] = files.try_into().expect("two models");
            shown.push(Shown {
                index: sample.test_index.expect("test samples have an index"),
                label: classes[label].clone(),
                predicted: [
                    classes[maps[0][s].predicted].clone(),
                    classes[maps[1][s].predicted].clone(),
                ],
                confidence: [maps[0][s].confidence, maps[1][s].confidence],
                target: [
                    classes[maps[0][s].target].clone(),
                    classes[maps[1][s].target].clone(),
                ],
                files: [fa, fb],
            });
        }
        let (right, wrong) = if *kind == "a-right-b-wrong" {
            (0, 1)
        } else {
            (1, 0)
        };
        let title = vec![
            Line::new(
                format!(
                    "{} right, {} wrong: {} of {} test images (showing {})",
                    names[right],
                    names[wrong],
                    indices.len(),
                    data.test.len(),
                    samples.len()
                ),
                BLACK,
            ),
            Line::new(
                format!(
                    "A = {} ({}, {:.2}%), B = {} ({}, {:.2}%)",
                    names[0],
                    compare_models[0].model,
                    100.0 * accuracies[0],
                    names[1],
                    compare_models[1].model,
                    100.0 * accuracies[1]
                ),
                GREY,
            ),
            Line::new(
                format!(
                    "McNemar: {} vs {} disagreements, chi2 = {:.2} (corrected), {} ({})",
                    test.b,
                    test.c,
                    test.chi2_corrected,
                    format_p(test.p_value),
                    if test.exact {
                        "exact binomial"
                    } else {
                        "chi-square"
                    }
                ),
                GREY,
            ),
            Line::new(
                format!(
                    "{} maps of the {} (A at {}, B at {})",
                    method.title(),
                    target.describe(&classes),
                    layers[0],
                    layers[1]
                ),
                GREY,
            ),
        ];
        let png = request.out.join(format!("{kind}.png"));
        let figure = Figure {
            title,
            headers: vec![
                "input".to_string(),
                format!("A: {}", names[0]),
                format!("B: {}", names[1]),
            ],
            tiles,
            columns: request.columns,
            colormap: request.style.colormap,
        };
        write_png(&png, &figure.render())?;
        galleries.push(Gallery {
            kind: kind.to_string(),
            count: indices.len(),
            png,
            shown,
        });
    }
    let report = CompareReport {
        data: request.data.clone(),
        test_images: data.test.len(),
        models: compare_models,
        method,
        methods: request.methods.clone(),
        target: target.describe(&classes),
        checkpoints,
        stability: stabilities,
        metrics: metrics.map(|(summary, _)| summary),
        agreement,
        mcnemar: test,
        galleries: galleries.try_into().expect("two galleries"),
    };
    write_json(&request.out.join("compare.json"), &report)?;
    Ok(report)
}

/// Writes `disagreements.csv`, with its header even when there is no row.
fn write_disagreements(path: &std::path::Path, rows: &[Disagreement]) -> Result<()> {
    let header = [
        "index",
        "kind",
        "label",
        "a_predicted",
        "a_confidence",
        "b_predicted",
        "b_confidence",
    ];
    write_rows(path, header, rows)
}

/// Refuses checkpoints of different classes or input sizes, naming two that differ.
fn check_alike(sides: &[Vec<LoadedModel>; 2]) -> Result<()> {
    let first = &sides[0][0];
    for other in sides.iter().flatten() {
        if other.meta.classes != first.meta.classes {
            return Err(Error::checkpoint(
                &other.checkpoint,
                format!(
                    "it was trained on the classes {:?}, {} on {:?}: compare models of one dataset",
                    other.meta.classes,
                    first.checkpoint.display(),
                    first.meta.classes
                ),
            ));
        }
        if other.meta.input_shape != first.meta.input_shape {
            return Err(Error::checkpoint(
                &other.checkpoint,
                format!(
                    "it takes inputs of {:?}, {} takes {:?}: compare models of one input size",
                    other.meta.input_shape,
                    first.checkpoint.display(),
                    first.meta.input_shape
                ),
            ));
        }
    }
    Ok(())
}

/// `stability.csv`: one row per method, image set and image.
fn write_stability(
    path: &std::path::Path,
    rows: &[(CamMethod, &str, &Sample, [PerImage; 3])],
) -> Result<()> {
    let mut header = vec![
        "method".to_string(),
        "images".to_string(),
        "index".to_string(),
    ];
    for pair in ["within_a", "within_b", "between"] {
        for measure in super::similarity::Similarity::NAMES {
            header.push(format!("{pair}_{measure}"));
        }
    }
    let records = rows.iter().map(|(method, set, sample, per)| {
        let mut row = vec![
            method.name().to_string(),
            set.to_string(),
            sample.test_index.map(|i| i.to_string()).unwrap_or_default(),
        ];
        for pair in per {
            row.extend(pair[0].iter().map(|v| format!("{v}")));
        }
        row
    });
    write_rows(path, &header, records)
}

/// `metrics.csv` of compare: one row per side, method and image.
fn write_metrics(
    path: &std::path::Path,
    sample: &[Sample],
    values: &[(usize, CamMethod, Vec<CamMap>, Vec<ImageScores>)],
    classes: &[String],
) -> Result<()> {
    let records = values.iter().flat_map(|(side, method, maps, scores)| {
        sample
            .iter()
            .zip(maps)
            .zip(scores)
            .map(|((s, map), score)| {
                let mut row = vec![["a", "b"][*side].to_string()];
                row.extend(metrics_row(s, *method, map, score, classes));
                row
            })
    });
    write_rows(path, metrics_header("side"), records)
}

/// Up to `count` of `indices`, drawn at random with `seed`, in index order.
fn pick(indices: &[usize], count: usize, seed: u64) -> Vec<usize> {
    let mut order = indices.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(count);
    order.sort_unstable();
    order
}

/// A gallery caption: the true class, then each model's prediction (green when right).
fn caption(
    label: usize,
    maps: [&CamMap; 2],
    classes: &[String],
    target: &ClassTarget,
) -> Vec<Line> {
    let mut lines = vec![Line::new(format!("true: {}", classes[label]), BLACK)];
    for (tag, map) in ["A", "B"].iter().zip(maps) {
        let color = if map.predicted == label { GREEN } else { RED };
        let mut text = format!(
            "{tag}: {} ({:.0}%)",
            classes[map.predicted],
            100.0 * map.confidence
        );
        if *target != ClassTarget::Predicted {
            text += &format!(", map of {}", classes[map.target]);
        }
        if map.is_blank() {
            text += ", blank map";
        }
        lines.push(Line::new(text, color));
    }
    lines
}

/// Test images of the seed-aware comparison's sample when `--stability` is not given.
pub const DEFAULT_STABILITY: usize = 500;
