//! Imported weights used as they are: the weights' own head (ImageNet's 1,000 classes for the
//! published files) and the weights' reference evaluation preprocessing, for `predict
//! --pretrained` and `eval --pretrained`.
//!
//! Preprocessing is that of the weights' reference implementation: the short side resized
//! (bilinear, antialiased), a centre crop, then `(x / 255 - mean) / std` per channel with the
//! mean and std of [`super::input_normalization`].

use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use super::{Scope, input_normalization, name_table, read_tensors};
use crate::data::image_folder;
use crate::data::preprocess::resize_center_crop;
use crate::error::{Error, IoContext, Result};
use crate::model::table::network_config;
use crate::model::{ImageClassifier, ImageClassifierConfig, ModelSpec, Network, NetworkConfig};

/// A weight file's evaluation preprocessing: resize the short side to `resize`, centre-crop
/// `crop` x `crop`, normalise with `mean` and `std` (of pixel values scaled to [0, 1]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Preprocessing {
    pub resize: u32,
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The reference preprocessing of each baseline's published weights: torchvision's and the
/// EfficientNet-Lite weights' `Resize(256)` + `CenterCrop(224)`; timm's Xception 299 with its
/// `crop_pct` of 0.8975 (short side `floor(299 / 0.8975)` = 333). `None` for the cnn.
pub fn reference_preprocessing(config: &NetworkConfig) -> Option<Preprocessing> {
    let (resize, crop) = match config {
        NetworkConfig::Vgg(_) | NetworkConfig::ResNet(_) | NetworkConfig::EfficientNetLite(_) => {
            (256, 224)
        }
        NetworkConfig::Xception(_) => (333, 299),
        NetworkConfig::Cnn(_) => return None,
    };
    let (mean, std) = input_normalization(config)?;
    Some(Preprocessing {
        resize,
        crop,
        mean,
        std,
    })
}

/// A network with the whole of a weight file loaded, its preprocessing and its class names.
pub struct Pretrained {
    pub network: Network,
    pub config: NetworkConfig,
    pub preprocessing: Preprocessing,
    /// One name per class: the `--labels` file's lines, or the class indices.
    pub labels: Vec<String>,
    /// Whether `labels` came from a file (else they are indices).
    pub named: bool,
    pub report: super::ImportReport,
}

/// One image's best classes: `(class index, label, probability)`, most probable first.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ranked {
    pub path: PathBuf,
    pub top: Vec<(usize, String, f32)>,
}

/// `eval --pretrained` on an image folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PretrainedEvaluation {
    pub images: usize,
    pub top1: f64,
    pub top5: f64,
    /// `(class, images, top-1 accuracy)` per class folder, in folder order.
    pub per_class: Vec<(String, usize, f64)>,
}

/// Reads a labels file: one class name per line (surrounding spaces trimmed, trailing blank
/// lines ignored).
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(Error::data(
            path,
            format!(
                "line {} is empty: a labels file has one class name per line",
                i + 1
            ),
        ));
    }
    if labels.is_empty() {
        return Err(Error::data(path, "holds no class names (one per line)"));
    }
    Ok(labels)
}

/// The class count of the head stored in `path` under `config`'s reference names.
fn head_classes(config: &NetworkConfig, path: &Path) -> Result<usize> {
    let (naming, layers) = name_table(config)?;
    let head = layers
        .iter()
        .rev()
        .find(|l| l.head)
        .expect("every name table ends in its head");
    let name = format!("{}.weight", head.file);
    let (_, tensors) = read_tensors(path)?;
    let tensor = tensors
        .get(&name)
        .ok_or_else(|| Error::data(path, format!("has no head '{name}' ({naming} names)")))?;
    Ok(tensor.shape[0])
}

/// Builds `model` with the head of the weight file `path`, loads the whole file and pairs it
/// with the weights' preprocessing and the `labels` file's class names.
pub fn load(
    model: &str,
    path: &Path,
    labels: Option<&Path>,
    device: &Device,
) -> Result<Pretrained> {
    let spec = ModelSpec {
        name: model.to_string(),
        options: Default::default(),
    };
    // The class count and crop size do not change the naming: probe with any.
    let probe = network_config(&spec, 1000, [3, 224, 224])?;
    let preprocessing = reference_preprocessing(&probe).ok_or_else(|| {
        Error::invalid(
            "--pretrained",
            format!("'{model}' has no published weights to predict with"),
        )
    })?;
    let classes = head_classes(&probe, path)?;
    let crop = preprocessing.crop as usize;
    let config = network_config(&spec, classes, [3, crop, crop])?;
    let (network, report) = super::load(config.init(device)?, &config, path, Scope::Full)?;
    let (labels, named) = match labels {
        Some(file) => {
            let names = read_labels(file)?;
            if names.len() != classes {
                return Err(Error::data(
                    file,
                    format!(
                        "names {} classes; the head of {} has {classes}",
                        names.len(),
                        path.display()
                    ),
                ));
            }
            (names, true)
        }
        None => ((0..classes).map(|i| i.to_string()).collect(), false),
    };
    Ok(Pretrained {
        network,
        config,
        preprocessing,
        labels,
        named,
        report,
    })
}

impl Pretrained {
    /// `[3, crop, crop]` normalised input of the image file `path`.
    pub fn input(&self, path: &Path) -> Result<Vec<f32>> {
        let image = image::open(path)
            .map_err(|e| Error::data(path, format!("cannot read the image: {e}")))?
            .to_rgb8();
        let p = &self.preprocessing;
        let (w, h) = image.dimensions();
        if w.min(h) == 0 {
            return Err(Error::data(path, "has no pixels"));
        }
        let chw = resize_center_crop(&image, p.resize, p.crop);
        let plane = (p.crop * p.crop) as usize;
        Ok(chw
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane;
                (v as f32 / 255.0 - p.mean[c]) / p.std[c]
            })
            .collect())
    }

    /// Softmax probabilities `[n, classes]` (row-major) of the image files `paths`.
    pub fn probabilities(&self, paths: &[PathBuf], device: &Device) -> Result<Vec<f32>> {
        let crop = self.preprocessing.crop as usize;
        let mut x = Vec::with_capacity(paths.len() * 3 * crop * crop);
        for path in paths {
            x.extend(self.input(path)?);
        }
        let images =
            Tensor::<4>::from_data(TensorData::new(x, [paths.len(), 3, crop, crop]), device);
        let probs = softmax(self.network.forward(images), 1);
        probs
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::invalid("--pretrained", format!("internal: {e:?}")))
    }

    /// The `top` most probable classes of each image file, in batches of `batch` images.
    pub fn predict(
        &self,
        paths: &[PathBuf],
        top: usize,
        batch: usize,
        device: &Device,
    ) -> Result<Vec<Ranked>> {
        let k = self.labels.len();
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(batch.max(1)) {
            let probs = self.probabilities(chunk, device)?;
            for (path, row) in chunk.iter().zip(probs.chunks_exact(k)) {
                let top = rank(row, top)
                    .into_iter()
                    .map(|(c, p)| (c, self.labels[c].clone(), p))
                    .collect();
                out.push(Ranked {
                    path: path.clone(),
                    top,
                });
            }
        }
        Ok(out)
    }

    /// Top-1 and top-5 accuracy on the image folder `dir` (`dir/<class>/<images>`, or
    /// `dir/test/<class>/...`), whose class folders are named as in the labels file.
    pub fn evaluate(
        &self,
        dir: &Path,
        batch: usize,
        device: &Device,
    ) -> Result<PretrainedEvaluation> {
        if !self.named {
            return Err(Error::invalid(
                "--labels",
                "eval --pretrained needs the class names the folders carry",
            ));
        }
        let root = if dir.join("test").is_dir() {
            dir.join("test")
        } else {
            dir.to_path_buf()
        };
        let mut files = Vec::new();
        let mut per_class = Vec::new();
        for class in image_folder::class_dirs(&root)? {
            let Some(label) = self.labels.iter().position(|l| *l == class) else {
                return Err(Error::data(
                    root.join(&class),
                    "is a class folder whose name is not in the labels file",
                ));
            };
            let images = image_folder::image_files(&root.join(&class))?;
            per_class.push((class, images.len(), 0usize));
            files.extend(images.into_iter().map(|p| (p, label, per_class.len() - 1)));
        }
        let k = self.labels.len();
        let (mut top1, mut top5) = (0usize, 0usize);
        for chunk in files.chunks(batch.max(1)) {
            let paths: Vec<PathBuf> = chunk.iter().map(|(p, _, _)| p.clone()).collect();
            let probs = self.probabilities(&paths, device)?;
            for ((_, label, folder), row) in chunk.iter().zip(probs.chunks_exact(k)) {
                let best = rank(row, 5);
                if best[0].0 == *label {
                    top1 += 1;
                    per_class[*folder].2 += 1;
                }
                if best.iter().any(|(c, _)| c == label) {
                    top5 += 1;
                }
            }
        }
        let n = files.len();
        Ok(PretrainedEvaluation {
            images: n,
            top1: top1 as f64 / n as f64,
            top5: top5 as f64 / n as f64,
            per_class: per_class
                .into_iter()
                .map(|(c, m, r)| (c, m, r as f64 / m as f64))
                .collect(),
        })
    }
}

/// The `top` largest entries of `row` as `(index, value)`, largest first (ties: lower index).
pub fn rank(row: &[f32], top: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}
