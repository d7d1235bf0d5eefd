//! `visionnet gradcam`: heat maps of a checkpoint for image files or test samples.
//!
//! Writes to the output folder, per sample, `<id>.raw.npy` (the map before ReLU and
//! normalisation, `[h, w]` float32), `<id>.map.npy` (normalised to [0, 1]) and
//! `<id>.overlay.png` (the map upsampled and blended on the upscaled input); then `grid.png`
//! (every sample with its true label, the prediction and its confidence) and `gradcam.json`
//! (what was explained, and each sample's verdict, map peak and files). With several methods,
//! each sample's files are `<id>.<method>.*` and the grid shows one panel per method.
//!
//! With `--metrics`, every method's maps of every sample are measured for faithfulness
//! ([`super::faithfulness`]): `metrics.csv` holds each image's values, `gradcam.json` the mean
//! of each over images with a 95% bootstrap interval, and the seconds spent. With `--sanity`,
//! the cascading randomisation of [`super::sanity`] writes `sanity.csv` (each image, method and
//! depth), `sanity.png` (rows: methods, columns: depths) and its summary in `gradcam.json`.
//! Maps, overlays and the grid are written for the first `show` samples only, so a
//! thousand-image measurement does not write thousands of pictures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;

use super::cam::CamMethod;
use super::faithfulness::{self, ImageScores, Metric, MetricOptions};
use super::figure::{BLACK, Figure, GREEN, GREY, Line, RED, Tile};
use super::gradcam::{CamMap, ClassTarget};
use super::output::{MapFiles, prepare_out, write_map, write_png};
use super::overlay::{OverlayStyle, overlay, rgb_image, upscale};
use super::samples::{self, LoadedModel, Sample};
use super::sanity::{self, SanityMaps, SanityReport};
use crate::data::batches::mix_seed;
use crate::data::image_file::SizePolicy;
use crate::data::{Cifar100Labels, Dataset};
use crate::error::{Error, Result};
use crate::io::{write_json, write_rows};
use crate::stats::bootstrap::{MeanInterval, REPLICATES, mean_interval};

/// The images to explain.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Image files; those of another size than the model's input are resized or refused.
    Files {
        paths: Vec<PathBuf>,
        size: SizePolicy,
    },
    /// `samples` test images of the dataset in `dir`, drawn at random with `seed`.
    TestSet {
        dir: PathBuf,
        labels: Cifar100Labels,
        samples: usize,
        seed: u64,
    },
}

/// What `visionnet gradcam` does.
#[derive(Clone, Debug)]
pub struct HeatmapRequest {
    /// Checkpoint folder, or run folder (its newest checkpoint).
    pub checkpoint: PathBuf,
    /// Layer to explain (default: the model's, the 4th conv layer for the study's CNNs).
    pub layer: Option<String>,
    /// `top`, `label`, a class index or a class name.
    pub class: String,
    /// The methods (at least one).
    pub methods: Vec<CamMethod>,
    /// Faithfulness measures to take (none: no measuring).
    pub metrics: Vec<Metric>,
    /// Whether to run the cascading-randomisation sanity check.
    pub sanity: bool,
    /// Samples whose maps, overlays and grid tiles are written (the first ones).
    pub show: usize,
    /// Seed of RandomCAM, ROAD's noise and the randomised weights.
    pub seed: u64,
    /// The images.
    pub inputs: Inputs,
    /// Output folder (new or empty).
    pub out: PathBuf,
    /// How overlays are drawn.
    pub style: OverlayStyle,
    /// Samples per row of the grid.
    pub columns: usize,
    /// Images per gradient pass.
    pub batch_size: usize,
}

/// One explained sample, as recorded in `gradcam.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SampleRecord {
    /// Identifier (also the stem of its files).
    pub id: String,
    /// The file, or the dataset image.
    pub source: String,
    /// True class, where known.
    pub label: Option<String>,
    /// Predicted class.
    pub predicted: String,
    /// Softmax probability of the prediction.
    pub confidence: f32,
    /// The class the map explains.
    pub target: String,
    /// Softmax probability of the explained class.
    pub target_probability: f32,
    /// Logit of the explained class.
    pub target_logit: f32,
    /// Smallest and largest raw map value.
    pub raw_range: [f32; 2],
    /// `[row, column]` of the map's largest value, in map cells.
    pub peak: [usize; 2],
    /// Files written.
    pub files: MapFiles,
    /// The other methods' maps, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<MethodMap>,
}

/// One more method's map of a sample.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodMap {
    /// Method.
    pub method: CamMethod,
    /// Smallest and largest raw map value.
    pub raw_range: [f32; 2],
    /// `[row, column]` of the map's largest value.
    pub peak: [usize; 2],
    /// Files written.
    pub files: MapFiles,
}

/// One method's faithfulness, each measure's mean over images with its 95% interval.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodMetrics {
    /// Method.
    pub method: CamMethod,
    /// Images measured.
    pub images: usize,
    /// Seconds to compute the maps of all images.
    pub seconds_maps: f64,
    /// Seconds to take the measures.
    pub seconds_measures: f64,
    /// Deletion AUC (lower is better).
    pub deletion_auc: Option<MeanInterval>,
    /// Insertion AUC (higher is better).
    pub insertion_auc: Option<MeanInterval>,
    /// ROAD, most relevant removed first: mean probability (lower is better).
    pub road_morf: Option<MeanInterval>,
    /// ROAD, least relevant removed first: mean probability (higher is better).
    pub road_lerf: Option<MeanInterval>,
    /// `(LeRF - MoRF) / 2` (higher is better).
    pub road: Option<MeanInterval>,
    /// Average drop in confidence, percent (lower is better).
    pub drop: Option<MeanInterval>,
    /// Increase in confidence, percent of images (higher is better).
    pub increase: Option<MeanInterval>,
}

/// The faithfulness section of `gradcam.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MetricsReport {
    /// Measures taken.
    pub metrics: Vec<Metric>,
    /// Deletion / insertion steps.
    pub steps: usize,
    /// ROAD's fractions removed.
    pub road_fractions: Vec<f64>,
    /// Perturbed inputs per image and method.
    pub inputs_per_image: usize,
    /// Each method.
    pub methods: Vec<MethodMetrics>,
    /// Per-image values.
    pub csv: PathBuf,
    /// Why there are no intervals, when there is a single image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `gradcam.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HeatmapReport {
    /// The checkpoint explained.
    pub checkpoint: PathBuf,
    /// Its model.
    pub model: String,
    /// The layer explained.
    pub layer: String,
    /// The first method (of `methods`).
    pub method: CamMethod,
    /// Every method.
    pub methods: Vec<CamMethod>,
    /// Samples explained (`samples` lists the shown ones).
    pub explained: usize,
    /// What the maps explain (`predicted class`, `true class`, `class cat`).
    pub target: String,
    /// `[height, width]` of the maps.
    pub map_shape: [usize; 2],
    /// Files that were resized to the model's input.
    pub resized: Vec<PathBuf>,
    /// Each sample.
    pub samples: Vec<SampleRecord>,
    /// The grid of the shown samples.
    pub grid: PathBuf,
    /// Faithfulness measures, with `--metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsReport>,
    /// The sanity check, with `--sanity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity: Option<SanityReport>,
    /// Its figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity_figure: Option<PathBuf>,
}

/// Explains the request's images and writes maps, overlays, the grid and `gradcam.json` (and
/// the measures and sanity check asked for). Everything is checked (checkpoint, layer, class,
/// images, output folder) and computed before anything is written.
pub fn run(request: &HeatmapRequest, device: &Device) -> Result<HeatmapReport> {
    let loaded = LoadedModel::load(&request.checkpoint, device)?;
    let layer = loaded.layer(request.layer.as_deref())?;
    let classes = loaded.meta.classes.clone();
    let target = ClassTarget::parse(&request.class, &classes)?;
    let shape = loaded.meta.input_shape;
    if request.methods.is_empty() {
        return Err(Error::invalid("--method", "give at least one method"));
    }
    let (samples, resized) = match &request.inputs {
        Inputs::Files { paths, size } => samples::from_files(paths, shape, &classes, *size)?,
        Inputs::TestSet {
            dir,
            labels,
            samples: count,
            seed,
        } => {
            let data = Dataset::load(dir, *labels)?;
            loaded.check_data(&data)?;
            (samples::from_test_set(&data, *count, *seed)?, Vec::new())
        }
    };
    if request.out.exists() {
        prepare_out(&request.out)?; // refuses an old folder before hours of work; empty: kept
    }
    let norm = &loaded.meta.normalize;
    let options = MetricOptions::new(
        request.metrics.clone(),
        request.batch_size.max(1) * 4,
        request.seed,
    );
    let images: Vec<Vec<f32>> = if request.metrics.is_empty() {
        Vec::new()
    } else {
        let batch = samples::normalised_batch(&samples, shape, norm);
        batch
            .images
            .chunks_exact(shape.iter().product())
            .map(|c| c.to_vec())
            .collect()
    };
    let ids: Vec<u64> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| s.test_index.unwrap_or(i) as u64)
        .collect();
    let mut all_maps = Vec::with_capacity(request.methods.len());
    let mut scores: Vec<Vec<ImageScores>> = Vec::new();
    let mut summaries = Vec::new();
    for (m, &method) in request.methods.iter().enumerate() {
        let explainer = loaded
            .explainer(&layer, method)?
            .with_seed(mix_seed(&[request.seed, 71]));
        let started = Instant::now();
        let shown = if request.metrics.is_empty() {
            request.show.min(samples.len())
        } else {
            samples.len()
        };
        let maps = samples::explain_samples(
            &explainer,
            &samples[..shown],
            shape,
            norm,
            &target,
            request.batch_size,
            device,
        )?;
        let seconds_maps = started.elapsed().as_secs_f64();
        if !request.metrics.is_empty() {
            let started = Instant::now();
            let values = faithfulness::measure(
                explainer.model(),
                &images,
                shape,
                &maps,
                &ids,
                &options,
                device,
            );
            let seconds_measures = started.elapsed().as_secs_f64();
            summaries.push(summarise(
                method,
                &values,
                seconds_maps,
                seconds_measures,
                mix_seed(&[request.seed, 89, m as u64]),
            ));
            scores.push(values);
        }
        all_maps.push(maps);
    }
    let sanity = if request.sanity {
        let chosen = &samples[..samples.len().min(request.show.max(1))];
        Some(sanity::run(
            &loaded,
            &layer,
            &request.methods,
            chosen,
            &target,
            request.batch_size,
            request.seed,
            device,
        )?)
    } else {
        None
    };

    prepare_out(&request.out)?;
    let several = request.methods.len() > 1;
    let shown = request.show.min(samples.len());
    let mut records = Vec::with_capacity(shown);
    let mut tiles = Vec::with_capacity(shown);
    for (s, sample) in samples.iter().enumerate().take(shown) {
        let image = rgb_image(&sample.pixels, shape);
        let mut panels = vec![upscale(&image, request.style.scale)];
        let mut written = Vec::with_capacity(request.methods.len());
        for (m, &method) in request.methods.iter().enumerate() {
            let map = &all_maps[m][s];
            let picture = overlay(&image, &map.normalised, map.shape, &request.style);
            let stem = if several {
                format!("{}.{}", sample.id, method_stem(method))
            } else {
                sample.id.clone()
            };
            let files = write_map(
                &request.out,
                &stem,
                &map.raw,
                &map.normalised,
                map.shape,
                &picture,
            )?;
            written.push(MethodMap {
                method,
                raw_range: raw_range(map),
                peak: peak(map),
                files,
            });
            panels.push(picture);
        }
        let first = &all_maps[0][s];
        tiles.push(Tile {
            panels,
            caption: caption(sample, first, &classes, &target),
        });
        let mut record = record(sample, first, &classes, written[0].files.clone());
        record.more = written.split_off(1);
        records.push(record);
    }
    let titles: Vec<&str> = request.methods.iter().map(|m| m.title()).collect();
    let title = vec![
        Line::new(
            format!(
                "{} of {} ({}), layer {}",
                titles.join(", "),
                loaded.short_name(),
                loaded.meta.model.name,
                layer
            ),
            BLACK,
        ),
        Line::new(
            format!(
                "maps of the {}; checkpoint {}",
                target.describe(&classes),
                loaded.checkpoint.display()
            ),
            GREY,
        ),
    ];
    let mut headers = vec!["input".to_string()];
    headers.extend(request.methods.iter().map(|m| {
        if several {
            m.title().to_string()
        } else {
            format!("{} {layer}", m.title())
        }
    }));
    let grid = Figure {
        title,
        headers,
        tiles,
        columns: request.columns,
        colormap: request.style.colormap,
    }
    .render();
    let grid_path = request.out.join("grid.png");
    write_png(&grid_path, &grid)?;

    let metrics = if request.metrics.is_empty() {
        None
    } else {
        let csv = request.out.join("metrics.csv");
        write_metrics_csv(
            &csv,
            &samples,
            &request.methods,
            &all_maps,
            &scores,
            &classes,
        )?;
        Some(MetricsReport {
            metrics: request.metrics.clone(),
            steps: options.steps,
            road_fractions: options.road_fractions.clone(),
            inputs_per_image: options.inputs_per_image(),
            methods: summaries,
            csv,
            note: (samples.len() < 2).then(|| {
                "a single image: means have no interval (an interval needs at least 2 images)"
                    .to_string()
            }),
        })
    };
    let (sanity, sanity_figure) = match sanity {
        Some((report, maps)) => {
            write_sanity_csv(&request.out.join("sanity.csv"), &report, &maps, &samples)?;
            let path = request.out.join("sanity.png");
            write_png(
                &path,
                &sanity_figure(
                    &report,
                    &maps,
                    &samples[0],
                    shape,
                    &request.style,
                    &loaded,
                    &layer,
                ),
            )?;
            (Some(report), Some(path))
        }
        None => (None, None),
    };
    let report = HeatmapReport {
        checkpoint: loaded.checkpoint.clone(),
        model: loaded.meta.model.name.clone(),
        layer,
        method: request.methods[0],
        methods: request.methods.clone(),
        explained: samples.len(),
        target: target.describe(&classes),
        map_shape: all_maps[0].first().map(|m| m.shape).unwrap_or_default(),
        resized,
        samples: records,
        grid: grid_path,
        metrics,
        sanity,
        sanity_figure,
    };
    write_json(&request.out.join("gradcam.json"), &report)?;
    Ok(report)
}

/// A method's name as a file-name part (`gradcam++` -> `gradcampp`).
pub fn method_stem(method: CamMethod) -> String {
    method.name().replace('+', "p")
}

/// Each measure's mean over images with its interval.
pub fn summarise(
    method: CamMethod,
    values: &[ImageScores],
    seconds_maps: f64,
    seconds_measures: f64,
    seed: u64,
) -> MethodMetrics {
    let column = |k: usize| -> Option<MeanInterval> {
        let xs: Vec<f64> = values.iter().filter_map(|v| v.values()[k]).collect();
        if xs.is_empty() {
            None
        } else {
            mean_interval(&xs, REPLICATES, 0.95, mix_seed(&[seed, k as u64]))
        }
    };
    MethodMetrics {
        method,
        images: values.len(),
        seconds_maps,
        seconds_measures,
        deletion_auc: column(0),
        insertion_auc: column(1),
        road_morf: column(2),
        road_lerf: column(3),
        road: column(4),
        drop: column(5),
        increase: column(6),
    }
}

/// The columns of a `metrics.csv`: `first` (the image's id, or compare's side), then those of
/// [`metrics_row`].
pub(super) fn metrics_header(first: &'static str) -> Vec<&'static str> {
    let mut header = vec![
        first,
        "test_index",
        "method",
        "label",
        "target",
        "target_probability",
    ];
    header.extend(ImageScores::NAMES);
    header
}

/// One image's columns of a `metrics.csv` after the first: where it comes from, the map's target, and its scores
/// (empty where a metric was not computed).
pub(super) fn metrics_row(
    sample: &Sample,
    method: CamMethod,
    map: &CamMap,
    scores: &ImageScores,
    classes: &[String],
) -> Vec<String> {
    let mut row = vec![
        sample.test_index.map(|i| i.to_string()).unwrap_or_default(),
        method.name().to_string(),
        sample.label.map(|l| classes[l].clone()).unwrap_or_default(),
        classes[map.target].clone(),
        format!("{}", map.target_probability),
    ];
    row.extend(
        scores
            .values()
            .iter()
            .map(|v| v.map(|v| format!("{v}")).unwrap_or_default()),
    );
    row
}

/// `metrics.csv`: one row per image and method.
fn write_metrics_csv(
    path: &Path,
    samples: &[Sample],
    methods: &[CamMethod],
    maps: &[Vec<CamMap>],
    scores: &[Vec<ImageScores>],
    classes: &[String],
) -> Result<()> {
    let records = methods.iter().enumerate().flat_map(|(m, &method)| {
        samples.iter().enumerate().map(move |(s, sample)| {
            let mut row = vec![sample.id.clone()];
            row.extend(metrics_row(
                sample,
                method,
                &maps[m][s],
                &scores[m][s],
                classes,
            ));
            row
        })
    });
    write_rows(path, metrics_header("id"), records)
}

/// `sanity.csv`: one row per method, depth and image.
fn write_sanity_csv(
    path: &Path,
    report: &SanityReport,
    maps: &SanityMaps,
    samples: &[Sample],
) -> Result<()> {
    let header = [
        "method",
        "depth",
        "group",
        "above_layer",
        "id",
        "spearman",
        "ssim",
    ];
    let records = report.methods.iter().enumerate().flat_map(|(m, method)| {
        method
            .depths
            .iter()
            .enumerate()
            .flat_map(move |(d, depth)| {
                maps.values[m][d]
                    .iter()
                    .enumerate()
                    .map(move |(i, &(rho, ssim))| {
                        [
                            method.method.name().to_string(),
                            depth.depth.to_string(),
                            depth.group.clone(),
                            depth.above_layer.to_string(),
                            samples[i].id.clone(),
                            format!("{rho}"),
                            format!("{ssim}"),
                        ]
                    })
            })
    });
    write_rows(path, header, records)
}

/// The sanity figure: one row per method, one column per depth (the trained model first), the
/// first sample's maps, each captioned with the mean Spearman and SSIM over all images.
fn sanity_figure(
    report: &SanityReport,
    maps: &SanityMaps,
    sample: &Sample,
    shape: [usize; 3],
    style: &OverlayStyle,
    loaded: &LoadedModel,
    layer: &str,
) -> image::RgbImage {
    let image = rgb_image(&sample.pixels, shape);
    let mut tiles = Vec::new();
    for (m, method) in report.methods.iter().enumerate() {
        for d in 0..maps.maps[m].len() {
            let map = &maps.maps[m][d][0];
            let picture = overlay(&image, &map.normalised, map.shape, style);
            let mut caption = Vec::new();
            if d == 0 {
                // The flag has a line of its own: beside a long method name it would be cut.
                let colour = if method.unchanged { RED } else { BLACK };
                caption.push(Line::new(method.method.title(), colour));
                caption.push(Line::new("trained", GREY));
                let flag = if method.unchanged { "UNCHANGED" } else { " " };
                caption.push(Line::new(flag, colour));
            } else {
                let depth = &method.depths[d - 1];
                caption.push(Line::new(
                    format!("+{}", depth.group),
                    if depth.above_layer { BLACK } else { GREY },
                ));
                let show = |v: &Option<MeanInterval>| {
                    v.as_ref()
                        .map(|v| format!("{:.2}", v.mean))
                        .unwrap_or_else(|| "-".into())
                };
                caption.push(Line::new(format!("rho {}", show(&depth.spearman)), GREY));
                caption.push(Line::new(format!("SSIM {}", show(&depth.ssim)), GREY));
            }
            tiles.push(Tile {
                panels: vec![picture],
                caption,
            });
        }
    }
    let columns = report.groups.len() + 1;
    Figure {
        title: vec![
            Line::new(
                format!("Cascading randomisation of {} ({}), layer {layer}: {} images", loaded.short_name(), loaded.meta.model.name, report.images),
                BLACK,
            ),
            Line::new(
                format!(
                    "columns: the trained model, then the top groups re-initialised one after another ({} above {layer}, black); rho, SSIM: means vs the trained maps",
                    report.groups_above_layer
                ),
                GREY,
            ),
        ],
        headers: Vec::new(),
        tiles,
        columns,
        colormap: style.colormap,
    }
    .render()
}

/// A map's `[row, column]` of its largest raw value (the first, if tied).
pub fn peak(map: &CamMap) -> [usize; 2] {
    let best = (0..map.raw.len()).fold(
        0,
        |best, i| if map.raw[i] > map.raw[best] { i } else { best },
    );
    [best / map.shape[1], best % map.shape[1]]
}

/// The grid caption of a sample: its label (green if predicted, red if not), the prediction and
/// confidence, and the explained class when it is not the prediction.
fn caption(sample: &Sample, map: &CamMap, classes: &[String], target: &ClassTarget) -> Vec<Line> {
    let predicted = format!(
        "pred: {} ({:.0}%)",
        classes[map.predicted],
        100.0 * map.confidence
    );
    let mut lines = match sample.label {
        Some(label) => {
            let color = if label == map.predicted { GREEN } else { RED };
            vec![
                Line::new(format!("true: {}", classes[label]), BLACK),
                Line::new(predicted, color),
            ]
        }
        None => vec![
            Line::new(short_source(&sample.source), BLACK),
            Line::new(predicted, BLACK),
        ],
    };
    if *target != ClassTarget::Predicted {
        lines.push(Line::new(
            format!(
                "map of: {} ({:.0}%)",
                classes[map.target],
                100.0 * map.target_probability
            ),
            GREY,
        ));
    }
    if map.is_blank() {
        lines.push(Line::new("map: no positive evidence", GREY));
    }
    lines
}

/// The file name of a source path.
fn short_source(source: &str) -> String {
    Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_string())
}

/// The smallest and largest raw value of a map.
fn raw_range(map: &CamMap) -> [f32; 2] {
    let min = map.raw.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map.raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    [min, max]
}

fn record(sample: &Sample, map: &CamMap, classes: &[String], files: MapFiles) -> SampleRecord {
    SampleRecord {
        id: sample.id.clone(),
        source: sample.source.clone(),
        label: sample.label.map(|l| classes[l].clone()),
        predicted: classes[map.predicted].clone(),
        confidence: map.confidence,
        target: classes[map.target].clone(),
        target_probability: map.target_probability,
        target_logit: map.target_logit,
        raw_range: raw_range(map),
        peak: peak(map),
        files,
        more: Vec::new(),
    }
}
