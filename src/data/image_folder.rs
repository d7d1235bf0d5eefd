//! Image folders: `ROOT/{train,test}/<class>/*.{png,jpg,jpeg,bmp,ppm}`, decoded in parallel.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image_set::ImageSet;
use crate::error::{Error, IoContext, Result};

/// File endings read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "ppm"];

/// Whether `root` looks like an image-folder dataset (has `train/` and `test/` folders).
pub fn detect(root: &Path) -> bool {
    root.join("train").is_dir() && root.join("test").is_dir()
}

/// The class folders of a split, sorted by name.
pub fn class_dirs(split_dir: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in fs::read_dir(split_dir).at(split_dir)? {
        let entry = entry.at(split_dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().at(entry.path())?.is_dir() && !name.starts_with('.') {
            classes.push(name);
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(Error::data(
            split_dir,
            "no class folders: expected <split>/<class>/<image files>",
        ));
    }
    Ok(classes)
}

/// The image files of one class folder, sorted by name.
pub fn image_files(class_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(class_dir).at(class_dir)? {
        let path = entry.at(class_dir)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::data(
            class_dir,
            format!("no images ({})", IMAGE_EXTENSIONS.join(", ")),
        ));
    }
    Ok(files)
}

/// Decodes one image to RGB, channel-major `[3, h, w]`.
fn decode(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let bytes = fs::read(path).at(path)?;
    let image = image::load_from_memory(&bytes)
        .map_err(|e| Error::data(path, format!("cannot decode the image: {e}")))?
        .to_rgb8();
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, px) in image.pixels().enumerate() {
        chw[i] = px[0];
        chw[plane + i] = px[1];
        chw[2 * plane + i] = px[2];
    }
    Ok((w, h, chw))
}

/// Loads one split (`ROOT/train` or `ROOT/test`) with the given class order.
pub fn load_split(split_dir: &Path, classes: &[String]) -> Result<ImageSet> {
    let mut files: Vec<(PathBuf, u16)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = split_dir.join(class);
        if !class_dir.is_dir() {
            return Err(Error::data(
                split_dir,
                format!(
                    "class '{class}' is missing (no folder {})",
                    class_dir.display()
                ),
            ));
        }
        files.extend(
            image_files(&class_dir)?
                .into_iter()
                .map(|f| (f, label as u16)),
        );
    }
    let decoded: Vec<(u32, u32, Vec<u8>)> = files
        .par_iter()
        .map(|(path, _)| decode(path))
        .collect::<Result<_>>()?;
    let (w0, h0) = (decoded[0].0, decoded[0].1);
    if let Some(i) = decoded.iter().position(|(w, h, _)| (*w, *h) != (w0, h0)) {
        return Err(Error::data(
            &files[i].0,
            format!(
                "image is {}x{} but {} is {w0}x{h0}: all images must have one size",
                decoded[i].0,
                decoded[i].1,
                files[0].0.display()
            ),
        ));
    }
    let mut set = ImageSet::empty([3, h0 as usize, w0 as usize], classes.to_vec());
    set.pixels.reserve(decoded.len() * set.image_len());
    for ((_, label), (_, _, chw)) in files.iter().zip(decoded) {
        set.pixels.extend_from_slice(&chw);
        set.labels.push(*label);
    }
    Ok(set)
}

/// Loads `ROOT/train` and `ROOT/test`. The classes are train's folders; test must have the same.
pub fn load(root: &Path) -> Result<(ImageSet, ImageSet)> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    let classes = class_dirs(&train_dir)?;
    let test_classes = class_dirs(&test_dir)?;
    if let Some(missing) = classes.iter().find(|c| !test_classes.contains(c)) {
        return Err(Error::data(
            &test_dir,
            format!("class '{missing}' is in train but missing from test"),
        ));
    }
    if let Some(extra) = test_classes.iter().find(|c| !classes.contains(c)) {
        return Err(Error::data(
            &train_dir,
            format!("class '{extra}' is in test but missing from train"),
        ));
    }
    let train = load_split(&train_dir, &classes)?;
    let test = load_split(&test_dir, &classes)?;
    if train.shape != test.shape {
        return Err(Error::data(
            &test_dir,
            format!(
                "test images are {}x{} but train images are {}x{}",
                test.shape[2], test.shape[1], train.shape[2], train.shape[1]
            ),
        ));
    }
    Ok((train, test))
}

/// Writes `set` as an image folder split: `dir/<class>/NNNNN.png`.
pub fn write_split(dir: &Path, set: &ImageSet) -> Result<()> {
    let [c, h, w] = set.shape;
    if c != 3 {
        return Err(Error::data(
            dir,
            format!("can only write RGB images, not {c} channels"),
        ));
    }
    for class in &set.classes {
        fs::create_dir_all(dir.join(class)).at(dir.join(class))?;
    }
    for i in 0..set.len() {
        let chw = set.image(i);
        let plane = h * w;
        let rgb: Vec<u8> = (0..plane)
            .flat_map(|p| [chw[p], chw[plane + p], chw[2 * plane + p]])
            .collect();
        let path = dir
            .join(&set.classes[set.labels[i] as usize])
            .join(format!("{i:05}.png"));
        image::save_buffer(
            &path,
            &rgb,
            w as u32,
            h as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::data(&path, format!("cannot write the image: {e}")))?;
    }
    Ok(())
}
