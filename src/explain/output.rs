//! Writing explanations: the output folder, maps as NumPy `.npy` arrays, PNG pictures.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::RgbImage;
use npyz::WriterBuilder;

use crate::error::{Error, IoContext, Result};

/// Creates the output folder `out`; refuses one that exists and is not empty, so nothing
/// written before is overwritten.
pub fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::invalid(
                "--out",
                format!("{} exists and is not a folder", out.display()),
            ));
        }
        if fs::read_dir(out).at(out)?.next().is_some() {
            return Err(Error::invalid(
                "--out",
                format!(
                    "{} exists and is not empty; give a new or empty folder (nothing is overwritten)",
                    out.display()
                ),
            ));
        }
    }
    fs::create_dir_all(out).at(out)
}

/// Writes `values` as a float32 NumPy array of `shape` (C order) to `path`.
pub fn write_npy(path: &Path, values: &[f32], shape: &[usize]) -> Result<()> {
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "values fill the shape"
    );
    let file = fs::File::create(path).at(path)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .at(path)?;
    writer.extend(values.iter().copied()).at(path)?;
    writer.finish().at(path)
}

/// Writes `image` as PNG to `path`.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::data(path, format!("cannot write the PNG: {e}")))
}

/// A file name made of `text`'s letters, digits, `-` and `_` (others become `_`).
pub fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The files written for one map.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MapFiles {
    /// The raw map (before ReLU and normalisation), `.npy`, `[h, w]` float32.
    pub raw: PathBuf,
    /// The normalised map, `.npy`, `[h, w]` float32 in [0, 1].
    pub map: PathBuf,
    /// The overlay, `.png`.
    pub overlay: PathBuf,
}

/// Writes a map's raw and normalised arrays and its overlay as `<stem>.raw.npy`,
/// `<stem>.map.npy` and `<stem>.overlay.png` in `dir`.
pub fn write_map(
    dir: &Path,
    stem: &str,
    raw: &[f32],
    normalised: &[f32],
    shape: [usize; 2],
    overlay: &RgbImage,
) -> Result<MapFiles> {
    let files = MapFiles {
        raw: dir.join(format!("{stem}.raw.npy")),
        map: dir.join(format!("{stem}.map.npy")),
        overlay: dir.join(format!("{stem}.overlay.png")),
    };
    write_npy(&files.raw, raw, &shape)?;
    write_npy(&files.map, normalised, &shape)?;
    write_png(&files.overlay, overlay)?;
    Ok(files)
}
