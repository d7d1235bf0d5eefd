//! `visionnet gradcam`: heat maps of a checkpoint for image files or test samples.
//!
//! Writes to the output folder, per sample, `<id>.raw.npy` (the map before ReLU and
//! normalisation, `[h, w]` float32), `<id>.map.npy` (normalised to [0, 1]) and
//! `<id>.overlay.png` (the map upsampled and blended on the upscaled input); then `grid.png`
//! (every sample with its true label, the prediction and its confidence) and `gradcam.json`
//! (what was explained, and each sample's verdict, map peak and files).

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::cam::CamMethod;
use super::figure::{BLACK, Figure, GREEN, GREY, Line, RED, Tile};
use super::gradcam::{CamMap, ClassTarget};
use super::output::{MapFiles, prepare_out, write_map, write_png};
use super::overlay::{OverlayStyle, overlay, rgb_image, upscale};
use super::samples::{self, LoadedModel, Sample};
use crate::data::image_file::SizePolicy;
use crate::data::{Cifar100Labels, Dataset};
use crate::error::Result;
use crate::train::metrics::write_json;

/// The images to explain.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Image files; those of another size than the model's input are resized or refused.
    Files { paths: Vec<PathBuf>, size: SizePolicy },
    /// `samples` test images of the dataset in `dir`, drawn at random with `seed`.
    TestSet { dir: PathBuf, labels: Cifar100Labels, samples: usize, seed: u64 },
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
    /// Grad-CAM, Grad-CAM++ or HiResCAM.
    pub method: CamMethod,
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
    /// Method.
    pub method: CamMethod,
    /// What the maps explain (`predicted class`, `true class`, `class cat`).
    pub target: String,
    /// `[height, width]` of the maps.
    pub map_shape: [usize; 2],
    /// Files that were resized to the model's input.
    pub resized: Vec<PathBuf>,
    /// Each sample.
    pub samples: Vec<SampleRecord>,
    /// The grid of all samples.
    pub grid: PathBuf,
}

/// Explains the request's images and writes maps, overlays, the grid and `gradcam.json`.
/// Everything is checked (checkpoint, layer, class, images, output folder) before anything is
/// written.
pub fn run(request: &HeatmapRequest, device: &Device) -> Result<HeatmapReport> {
    let loaded = LoadedModel::load(&request.checkpoint, device)?;
    let layer = loaded.layer(request.layer.as_deref())?;
    let classes = loaded.meta.classes.clone();
    let target = ClassTarget::parse(&request.class, &classes)?;
    let shape = loaded.meta.input_shape;
    let (samples, resized) = match &request.inputs {
        Inputs::Files { paths, size } => samples::from_files(paths, shape, &classes, *size)?,
        Inputs::TestSet { dir, labels, samples: count, seed } => {
            let data = Dataset::load(dir, *labels)?;
            loaded.check_data(&data)?;
            (samples::from_test_set(&data, *count, *seed)?, Vec::new())
        }
    };
    let explainer = loaded.explainer(&layer, request.method)?;
    let maps = samples::explain_samples(&explainer, &samples, shape, &loaded.meta.normalize, &target, request.batch_size, device)?;

    prepare_out(&request.out)?;
    let mut records = Vec::with_capacity(samples.len());
    let mut tiles = Vec::with_capacity(samples.len());
    for (sample, map) in samples.iter().zip(&maps) {
        let image = rgb_image(&sample.pixels, shape);
        let picture = overlay(&image, &map.normalised, map.shape, &request.style);
        let files = write_map(&request.out, &sample.id, &map.raw, &map.normalised, map.shape, &picture)?;
        tiles.push(Tile {
            panels: vec![upscale(&image, request.style.scale), picture],
            caption: caption(sample, map, &classes, &target),
        });
        records.push(record(sample, map, &classes, files));
    }
    let title = vec![
        Line::new(
            format!("{} of {} ({}), layer {}", request.method.title(), loaded.short_name(), loaded.meta.model.name, layer),
            BLACK,
        ),
        Line::new(format!("maps of the {}; checkpoint {}", target.describe(&classes), loaded.checkpoint.display()), GREY),
    ];
    let grid = Figure {
        title,
        headers: vec!["input".to_string(), format!("{} {layer}", request.method.title())],
        tiles,
        columns: request.columns,
        colormap: request.style.colormap,
    }
    .render();
    let grid_path = request.out.join("grid.png");
    write_png(&grid_path, &grid)?;
    let report = HeatmapReport {
        checkpoint: loaded.checkpoint.clone(),
        model: loaded.meta.model.name.clone(),
        layer,
        method: request.method,
        target: target.describe(&classes),
        map_shape: maps.first().map(|m| m.shape).unwrap_or_default(),
        resized,
        samples: records,
        grid: grid_path,
    };
    write_json(&request.out.join("gradcam.json"), &report)?;
    Ok(report)
}

/// A map's `[row, column]` of its largest raw value (the first, if tied).
pub fn peak(map: &CamMap) -> [usize; 2] {
    let best = (0..map.raw.len()).fold(0, |best, i| if map.raw[i] > map.raw[best] { i } else { best });
    [best / map.shape[1], best % map.shape[1]]
}

/// The grid caption of a sample: its label (green if predicted, red if not), the prediction and
/// confidence, and the explained class when it is not the prediction.
fn caption(sample: &Sample, map: &CamMap, classes: &[String], target: &ClassTarget) -> Vec<Line> {
    let predicted = format!("pred: {} ({:.0}%)", classes[map.predicted], 100.0 * map.confidence);
    let mut lines = match sample.label {
        Some(label) => {
            let color = if label == map.predicted { GREEN } else { RED };
            vec![Line::new(format!("true: {}", classes[label]), BLACK), Line::new(predicted, color)]
        }
        None => vec![Line::new(short_source(&sample.source), BLACK), Line::new(predicted, BLACK)],
    };
    if *target != ClassTarget::Predicted {
        lines.push(Line::new(
            format!("map of: {} ({:.0}%)", classes[map.target], 100.0 * map.target_probability),
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
    Path::new(source).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| source.to_string())
}

fn record(sample: &Sample, map: &CamMap, classes: &[String], files: MapFiles) -> SampleRecord {
    let min = map.raw.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map.raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    SampleRecord {
        id: sample.id.clone(),
        source: sample.source.clone(),
        label: sample.label.map(|l| classes[l].clone()),
        predicted: classes[map.predicted].clone(),
        confidence: map.confidence,
        target: classes[map.target].clone(),
        target_probability: map.target_probability,
        target_logit: map.target_logit,
        raw_range: [min, max],
        peak: peak(map),
        files,
    }
}
