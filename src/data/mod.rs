//! Datasets: CIFAR binaries and image folders loaded into memory, splits, augmentation, batches.
//!
//! Knows nothing of models.

pub mod augment;
pub mod batches;
pub mod cifar_binary;
pub mod fetch;
pub mod image_file;
pub mod image_folder;
pub mod image_set;
pub mod inspect;
pub mod preprocess;
pub mod split;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use augment::{Augment, Normalize};
pub use batches::{EpochPlan, HostBatch};
pub use cifar_binary::Cifar100Labels;
pub use image_set::ImageSet;

use crate::error::{Error, Result};

/// The on-disk format a dataset was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `cifar-10-batches-bin`.
    Cifar10Binary,
    /// `cifar-100-binary`, with the fine or coarse labels.
    Cifar100Binary,
    /// `ROOT/{train,test}/<class>/<images>`.
    ImageFolder,
}

/// A dataset's training and test sets, as loaded from disk.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder it was read from.
    pub root: PathBuf,
    /// How it was stored.
    pub format: Format,
    /// The official training set (validation is carved from it later).
    pub train: ImageSet,
    /// The test set, touched only for final evaluation.
    pub test: ImageSet,
    /// Seconds spent reading and decoding.
    pub load_seconds: f64,
}

impl Dataset {
    /// Loads the dataset in `root`: a CIFAR-10 or CIFAR-100 binary copy (the folder itself or its
    /// official sub-folder), or an image folder with `train/` and `test/`.
    /// `labels` picks CIFAR-100's label set; other formats ignore it.
    pub fn load(root: &Path, labels: Cifar100Labels) -> Result<Self> {
        if !root.exists() {
            return Err(Error::data(root, "no such directory"));
        }
        if !root.is_dir() {
            return Err(Error::data(root, "is not a directory"));
        }
        let start = Instant::now();
        let (format, (train, test)) = if let Some(layout) = cifar_binary::detect(root) {
            match layout {
                cifar_binary::CifarLayout::Cifar10(dir) => {
                    (Format::Cifar10Binary, cifar_binary::load_cifar10(&dir)?)
                }
                cifar_binary::CifarLayout::Cifar100(dir) => (
                    Format::Cifar100Binary,
                    cifar_binary::load_cifar100(&dir, labels)?,
                ),
            }
        } else if image_folder::detect(root) {
            (Format::ImageFolder, image_folder::load(root)?)
        } else {
            return Err(Error::data(
                root,
                "holds no dataset: expected CIFAR-10 binary files (data_batch_1.bin .. \
                 test_batch.bin), CIFAR-100 binary files (train.bin, test.bin), or train/ and \
                 test/ folders of class folders of images",
            ));
        };
        Ok(Self {
            root: root.to_path_buf(),
            format,
            train,
            test,
            load_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Class names, indexed by label.
    pub fn classes(&self) -> &[String] {
        &self.train.classes
    }
}

/// The three sets a training run uses.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Images the model learns from.
    pub train: ImageSet,
    /// Images held out of `train` to watch generalisation each epoch (may be empty).
    pub val: ImageSet,
    /// The official test set.
    pub test: ImageSet,
}

impl Splits {
    /// Carves a stratified validation set of `val_size` images from the training set, then, if
    /// `train_limit` is set, keeps a stratified subset of that many training images. Both draws
    /// are seeded by `seed`.
    pub fn carve(
        data: &Dataset,
        val_size: usize,
        train_limit: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        let full = &data.train;
        if val_size >= full.len() {
            return Err(Error::invalid(
                "--val-size",
                format!(
                    "{val_size} validation images leave none of the {} training images to train on",
                    full.len()
                ),
            ));
        }
        let (train_idx, val_idx) =
            split::stratified_split(&full.labels, full.num_classes(), val_size, seed);
        let mut train = full.select(&train_idx);
        let val = full.select(&val_idx);
        if let Some(limit) = train_limit {
            if limit == 0 || limit > train.len() {
                return Err(Error::invalid(
                    "--train-limit",
                    format!(
                        "must be between 1 and {} (the training images left after validation)",
                        train.len()
                    ),
                ));
            }
            let (_, keep) = split::stratified_split(
                &train.labels,
                train.num_classes(),
                limit,
                batches::mix_seed(&[seed, 2]),
            );
            train = train.select(&keep);
        }
        Ok(Self {
            train,
            val,
            test: data.test.clone(),
        })
    }
}
