//! The images to explain: files from the command line, or samples of a dataset's test set; and
//! a checkpoint loaded for explaining.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::cam::CamMethod;
use super::gradcam::{CamMap, ClassTarget, Explainer};
use crate::data::batches::{host_batch, mix_seed};
use crate::data::image_file::{SizePolicy, read_rgb};
use crate::data::{Augment, Dataset, ImageSet, Normalize};
use crate::error::{Error, Result};
use crate::model::table::network_config;
use crate::model::{ImageClassifierConfig, Network, NetworkConfig};
use crate::train::checkpoint::{self, CheckpointMeta};

/// One image to explain.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// A short identifier, usable in file names (`003-cat_0012`, `test-01234`).
    pub id: String,
    /// Where it came from: the file, or `DATA test image N`.
    pub source: String,
    /// The true label, where known.
    pub label: Option<usize>,
    /// Its index in the dataset's test set, for test images.
    pub test_index: Option<usize>,
    /// `[c, h, w]` pixels.
    pub pixels: Vec<u8>,
}

/// A checkpoint loaded for explaining.
pub struct LoadedModel {
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
    /// Its `meta.json`.
    pub meta: CheckpointMeta,
    /// The network's configuration.
    pub config: NetworkConfig,
    /// The network, with the checkpoint's weights.
    pub model: Network,
}

impl LoadedModel {
    /// Loads the checkpoint `path` (a checkpoint folder, or a run folder: its newest) on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (checkpoint, meta, model) = checkpoint::load_model(path, device)?;
        let config = network_config(&meta.model, meta.classes.len(), meta.input_shape)
            .map_err(|e| Error::checkpoint(&checkpoint, e.to_string()))?;
        Ok(Self {
            checkpoint,
            meta,
            config,
            model,
        })
    }

    /// The layer to explain: `layer` if given (it must exist), else the model's default.
    pub fn layer(&self, layer: Option<&str>) -> Result<String> {
        match layer {
            Some(name) => {
                self.config.check_layer(&self.meta.model.name, name)?;
                Ok(name.to_string())
            }
            None => Ok(self.config.cam_layer()),
        }
    }

    /// An explainer of this model at `layer` with `method`.
    pub fn explainer(&self, layer: &str, method: CamMethod) -> Result<Explainer> {
        Explainer::new(
            &self.model,
            &self.config,
            &self.meta.model.name,
            layer,
            method,
        )
    }

    /// A short name for figures: the run folder's name (or the checkpoint folder's).
    pub fn short_name(&self) -> String {
        let dir = &self.checkpoint;
        let run = match dir.parent() {
            Some(p) if p.file_name().is_some_and(|n| n == "checkpoints") => {
                p.parent().unwrap_or(dir)
            }
            _ => dir,
        };
        run.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string())
    }

    /// Checks that `data`'s test set fits the model: same classes, same image size.
    pub fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.classes() != self.meta.classes.as_slice() {
            return Err(Error::data(
                &data.root,
                format!(
                    "its classes {:?} are not the {:?} that {} was trained on",
                    data.classes(),
                    self.meta.classes,
                    self.checkpoint.display()
                ),
            ));
        }
        if data.test.shape != self.meta.input_shape {
            return Err(Error::data(
                &data.root,
                format!(
                    "its images are {:?}, the model {} takes {:?}",
                    data.test.shape,
                    self.checkpoint.display(),
                    self.meta.input_shape
                ),
            ));
        }
        Ok(())
    }
}

/// Reads image files for a model taking `[c, h, w]` inputs. A file whose parent folder is named
/// after one of `classes` (as in an image-folder dataset) gets that label. Returns the samples
/// and the files that were resized.
pub fn from_files(
    paths: &[PathBuf],
    shape: [usize; 3],
    classes: &[String],
    policy: SizePolicy,
) -> Result<(Vec<Sample>, Vec<PathBuf>)> {
    let mut samples = Vec::with_capacity(paths.len());
    let mut resized = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let file = read_rgb(path, shape, policy)?;
        if file.resized {
            resized.push(path.clone());
        }
        let label = path.parent().and_then(|p| p.file_name()).and_then(|name| {
            classes
                .iter()
                .position(|c| c.as_str() == name.to_string_lossy())
        });
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        samples.push(Sample {
            id: format!("{i:03}-{}", super::output::safe_name(&stem)),
            source: path.display().to_string(),
            label,
            test_index: None,
            pixels: file.pixels,
        });
    }
    Ok((samples, resized))
}

/// `count` test images of `data`, drawn at random (seeded) without replacement, in index order.
pub fn from_test_set(data: &Dataset, count: usize, seed: u64) -> Result<Vec<Sample>> {
    let n = data.test.len();
    if count == 0 || count > n {
        return Err(Error::invalid(
            "--samples",
            format!(
                "must be between 1 and {n} (the test images of {})",
                data.root.display()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[seed, 61])));
    let mut picked = order[..count].to_vec();
    picked.sort_unstable();
    Ok(picked.into_iter().map(|i| test_sample(data, i)).collect())
}

/// Test image `index` of `data` as a sample.
pub fn test_sample(data: &Dataset, index: usize) -> Sample {
    Sample {
        id: format!("test-{index:05}"),
        source: format!("{} test image {index}", data.root.display()),
        label: Some(data.test.labels[index] as usize),
        test_index: Some(index),
        pixels: data.test.image(index).to_vec(),
    }
}

/// `samples` as one normalised batch `[n, c, h, w]`.
pub fn normalised_tensor(
    samples: &[Sample],
    shape: [usize; 3],
    norm: &Normalize,
    device: &Device,
) -> Tensor<4> {
    normalised_batch(samples, shape, norm)
        .into_tensors(device)
        .0
}

/// `samples` normalised on the host.
pub fn normalised_batch(
    samples: &[Sample],
    shape: [usize; 3],
    norm: &Normalize,
) -> crate::data::batches::HostBatch {
    let mut set = ImageSet::empty(shape, Vec::new());
    for sample in samples {
        set.pixels.extend_from_slice(&sample.pixels);
        set.labels.push(0); // unused: the labels that matter are the samples'
    }
    let indices: Vec<usize> = (0..samples.len()).collect();
    host_batch(&set, &indices, Augment::NONE, norm, 0)
}

/// Maps of `samples` (images of `shape`, normalised by `norm`), `batch_size` at a time.
pub fn explain_samples(
    explainer: &Explainer,
    samples: &[Sample],
    shape: [usize; 3],
    norm: &Normalize,
    target: &ClassTarget,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<CamMap>> {
    let mut maps = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(batch_size.max(1)) {
        let images = normalised_tensor(chunk, shape, norm, device);
        let labels: Vec<Option<usize>> = chunk.iter().map(|s| s.label).collect();
        maps.extend(explainer.explain(images, &labels, target)?);
    }
    Ok(maps)
}
