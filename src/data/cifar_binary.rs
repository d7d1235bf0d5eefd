//! CIFAR-10 and CIFAR-100 in their official binary formats.
//!
//! - CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin` (training,
//!   10,000 images each) and `test_batch.bin`; each record is 1 label byte then 3,072 pixel bytes
//!   (1,024 red, 1,024 green, 1,024 blue, row-major 32x32). Class names: `batches.meta.txt`, one
//!   per line.
//! - CIFAR-100 (`cifar-100-binary/`): `train.bin` (50,000) and `test.bin` (10,000); each record is
//!   1 coarse label byte, 1 fine label byte, then 3,072 pixel bytes. Class names:
//!   `fine_label_names.txt` (100) and `coarse_label_names.txt` (20).

use std::fs;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::image_set::ImageSet;
use crate::error::{Error, IoContext, Result};

/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// Pixel bytes per CIFAR image: 3 channels of 32x32.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Images per CIFAR-10 batch file.
pub const CIFAR10_BATCH_IMAGES: usize = 10_000;
/// The CIFAR-10 training batch files, in order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The CIFAR-10 test batch file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// The CIFAR-10 class-name file.
pub const CIFAR10_META_FILE: &str = "batches.meta.txt";
/// Folder name of the official CIFAR-10 binary archive.
pub const CIFAR10_DIR: &str = "cifar-10-batches-bin";
/// Folder name of the official CIFAR-100 binary archive.
pub const CIFAR100_DIR: &str = "cifar-100-binary";

/// Which of CIFAR-100's two label sets to learn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

/// The layout of one binary record: how many label bytes precede the pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    /// CIFAR-10: `[label, pixels...]`.
    Cifar10,
    /// CIFAR-100: `[coarse, fine, pixels...]`.
    Cifar100,
}

impl Record {
    fn label_bytes(self) -> usize {
        match self {
            Record::Cifar10 => 1,
            Record::Cifar100 => 2,
        }
    }
    fn len(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }
}

/// Where a CIFAR binary copy lives, if `dir` is (or directly contains) one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CifarLayout {
    /// A folder holding `data_batch_*.bin`, `test_batch.bin`, `batches.meta.txt`.
    Cifar10(PathBuf),
    /// A folder holding `train.bin`, `test.bin` and the two label-name files.
    Cifar100(PathBuf),
}

/// Finds a CIFAR binary copy in `dir` itself or in its official sub-folder.
pub fn detect(dir: &Path) -> Option<CifarLayout> {
    for candidate in [dir.to_path_buf(), dir.join(CIFAR10_DIR)] {
        if candidate.join(CIFAR10_TEST_FILE).is_file()
            || candidate.join(CIFAR10_TRAIN_FILES[0]).is_file()
        {
            return Some(CifarLayout::Cifar10(candidate));
        }
    }
    for candidate in [dir.to_path_buf(), dir.join(CIFAR100_DIR)] {
        if candidate.join("train.bin").is_file() || candidate.join("test.bin").is_file() {
            return Some(CifarLayout::Cifar100(candidate));
        }
    }
    None
}

/// Reads a class-name file: one name per line, blank lines ignored.
fn read_names(path: &Path, expected: usize) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).at(path)?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        return Err(Error::data(
            path,
            format!("expected {expected} class names, found {}", names.len()),
        ));
    }
    Ok(names)
}

/// Reads the records of one binary file into `set`, keeping the label at `label_offset`.
fn read_records(
    path: &Path,
    record: Record,
    label_offset: usize,
    expected_images: Option<usize>,
    set: &mut ImageSet,
) -> Result<()> {
    let bytes = fs::read(path).at(path)?;
    if bytes.is_empty() {
        return Err(Error::data(path, "the file is empty"));
    }
    if bytes.len() % record.len() != 0 {
        return Err(Error::data(
            path,
            format!(
                "{} bytes is not a whole number of {}-byte records (truncated or not a CIFAR \
                 binary file)",
                bytes.len(),
                record.len()
            ),
        ));
    }
    let count = bytes.len() / record.len();
    if let Some(expected) = expected_images
        && count != expected
    {
        return Err(Error::data(
            path,
            format!("holds {count} images, a CIFAR batch file holds {expected}"),
        ));
    }
    let num_classes = set.num_classes();
    set.pixels.reserve(count * IMAGE_BYTES);
    set.labels.reserve(count);
    for (i, rec) in bytes.chunks_exact(record.len()).enumerate() {
        let label = rec[label_offset] as usize;
        if label >= num_classes {
            return Err(Error::data(
                path,
                format!(
                    "record {i} has label {label}, but there are only {num_classes} classes \
                     (labels 0..{})",
                    num_classes - 1
                ),
            ));
        }
        set.labels.push(label as u16);
        set.pixels.extend_from_slice(&rec[record.label_bytes()..]);
    }
    Ok(())
}

/// Loads CIFAR-10's training and test sets from a `cifar-10-batches-bin` folder.
pub fn load_cifar10(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let classes = read_names(&dir.join(CIFAR10_META_FILE), 10)?;
    let shape = [3, SIDE, SIDE];
    let mut train = ImageSet::empty(shape, classes.clone());
    for file in CIFAR10_TRAIN_FILES {
        read_records(
            &dir.join(file),
            Record::Cifar10,
            0,
            Some(CIFAR10_BATCH_IMAGES),
            &mut train,
        )?;
    }
    let mut test = ImageSet::empty(shape, classes);
    read_records(
        &dir.join(CIFAR10_TEST_FILE),
        Record::Cifar10,
        0,
        Some(CIFAR10_BATCH_IMAGES),
        &mut test,
    )?;
    Ok((train, test))
}

/// Loads CIFAR-100's training and test sets from a `cifar-100-binary` folder, with the fine
/// (100 classes) or coarse (20 superclasses) labels.
pub fn load_cifar100(dir: &Path, labels: Cifar100Labels) -> Result<(ImageSet, ImageSet)> {
    let (names_file, count, offset) = match labels {
        Cifar100Labels::Fine => ("fine_label_names.txt", 100, 1),
        Cifar100Labels::Coarse => ("coarse_label_names.txt", 20, 0),
    };
    let classes = read_names(&dir.join(names_file), count)?;
    let shape = [3, SIDE, SIDE];
    let mut train = ImageSet::empty(shape, classes.clone());
    read_records(
        &dir.join("train.bin"),
        Record::Cifar100,
        offset,
        None,
        &mut train,
    )?;
    let mut test = ImageSet::empty(shape, classes);
    read_records(
        &dir.join("test.bin"),
        Record::Cifar100,
        offset,
        None,
        &mut test,
    )?;
    Ok((train, test))
}

/// Writes images in the CIFAR-10 record layout (`[label, pixels...]`), e.g. a `data_batch_N.bin`.
pub fn write_cifar10_records(path: &Path, set: &ImageSet) -> Result<()> {
    check_cifar_shape(path, set)?;
    let mut bytes = Vec::with_capacity(set.len() * Record::Cifar10.len());
    for i in 0..set.len() {
        bytes.push(set.labels[i] as u8);
        bytes.extend_from_slice(set.image(i));
    }
    fs::write(path, bytes).at(path)
}

/// Writes images in the CIFAR-100 record layout (`[coarse, fine, pixels...]`).
pub fn write_cifar100_records(path: &Path, set: &ImageSet, coarse: &[u8]) -> Result<()> {
    check_cifar_shape(path, set)?;
    if coarse.len() != set.len() {
        return Err(Error::invalid(
            "coarse labels",
            format!("{} coarse labels for {} images", coarse.len(), set.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(set.len() * Record::Cifar100.len());
    for (i, &c) in coarse.iter().enumerate() {
        bytes.push(c);
        bytes.push(set.labels[i] as u8);
        bytes.extend_from_slice(set.image(i));
    }
    fs::write(path, bytes).at(path)
}

fn check_cifar_shape(path: &Path, set: &ImageSet) -> Result<()> {
    if set.shape != [3, SIDE, SIDE] || set.num_classes() > 256 {
        return Err(Error::data(
            path,
            format!(
                "CIFAR records hold 3x32x32 images with byte labels, not {:?} with {} classes",
                set.shape,
                set.num_classes()
            ),
        ));
    }
    Ok(())
}
