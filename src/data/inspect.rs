//! `visionnet data inspect`: what a dataset folder holds.

use std::fmt;

use super::{Dataset, Format, ImageSet};

/// Counts and statistics of one split.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SplitSummary {
    /// `train` or `test`.
    pub name: String,
    /// Number of images.
    pub images: usize,
    /// Images per class, in class order.
    pub per_class: Vec<usize>,
    /// Per-channel mean of pixel values in [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of pixel values in [0, 1].
    pub std: Vec<f32>,
}

impl SplitSummary {
    fn of(name: &str, set: &ImageSet) -> Self {
        let (mean, std) = set.channel_stats();
        Self {
            name: name.to_string(),
            images: set.len(),
            per_class: set.class_counts(),
            mean,
            std,
        }
    }
}

/// What `data inspect` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DataSummary {
    /// The folder inspected.
    pub root: String,
    /// The format found there.
    pub format: Format,
    /// `[channels, height, width]` of every image.
    pub image_shape: [usize; 3],
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Train and test.
    pub splits: Vec<SplitSummary>,
    /// Seconds spent loading.
    pub load_seconds: f64,
}

impl DataSummary {
    /// Summarises a loaded dataset.
    pub fn of(data: &Dataset) -> Self {
        Self {
            root: data.root.display().to_string(),
            format: data.format,
            image_shape: data.train.shape,
            classes: data.classes().to_vec(),
            splits: vec![
                SplitSummary::of("train", &data.train),
                SplitSummary::of("test", &data.test),
            ],
            load_seconds: data.load_seconds,
        }
    }
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.image_shape;
        writeln!(f, "dataset   {}", self.root)?;
        writeln!(f, "format    {:?}", self.format)?;
        writeln!(f, "images    {w}x{h}, {c} channels")?;
        writeln!(f, "classes   {}", self.classes.len())?;
        writeln!(f, "loaded in {:.2} s", self.load_seconds)?;
        for split in &self.splits {
            let fmt3 = |v: &[f32]| {
                v.iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                f,
                "{:<5} {:>6} images  mean [{}]  std [{}]",
                split.name,
                split.images,
                fmt3(&split.mean),
                fmt3(&split.std)
            )?;
        }
        let width = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(5)
            .max(5);
        write!(f, "{:<width$}", "class")?;
        for split in &self.splits {
            write!(f, " {:>7}", split.name)?;
        }
        writeln!(f)?;
        for (i, class) in self.classes.iter().enumerate() {
            write!(f, "{class:<width$}")?;
            for split in &self.splits {
                write!(f, " {:>7}", split.per_class[i])?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
