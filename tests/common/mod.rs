//! Helpers shared by the integration tests: synthetic datasets written in the real formats.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::prelude::*;
use visionnet::data::cifar_binary::{self, CIFAR10_BATCH_IMAGES, CIFAR10_TRAIN_FILES};
use visionnet::data::{ImageSet, image_folder};
use visionnet::model::ImageClassifier;
use visionnet::train::checkpoint;
use visionnet::train::experiment::ExperimentOptions;
use visionnet::train::metrics::EpochMetrics;
use visionnet::train::{RunOptions, TrainConfig, flags};

/// The shared data and weights: `$VISIONNET_SHARED` if set (a git worktree elsewhere), else
/// `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("VISIONNET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The shared CIFAR-10 copy (JPEG image folder).
pub fn shared_cifar10() -> PathBuf {
    shared_dir().join("data/cifar10-jpeg")
}

/// Class names `class0`, `class1`, ...
pub fn class_names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("class{i}")).collect()
}

/// `n` images of `[3, side, side]` whose content depends on the label (a brighter quadrant per
/// class plus noise), so a network can learn them; deterministic in `seed`.
pub fn synthetic_set(n: usize, k: usize, side: usize, seed: u64) -> ImageSet {
    let mut set = ImageSet::empty([3, side, side], class_names(k));
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for i in 0..n {
        let label = (i % k) as u16;
        set.labels.push(label);
        for c in 0..3 {
            for y in 0..side {
                for x in 0..side {
                    let region = (y * 2 / side) * 2 + (x * 2 / side); // 0..4 quadrants
                    let lit = (label as usize + c) % 4 == region;
                    let base = if lit { 170 } else { 60 };
                    let noise = (next() % 50) as i32 - 25;
                    set.pixels.push((base + noise).clamp(0, 255) as u8);
                }
            }
        }
    }
    set
}

/// Writes a CIFAR-10 binary copy (full size: 5 x 10,000 training and 10,000 test images) to
/// `dir`, with synthetic learnable images. Returns the training and test sets written.
pub fn write_cifar10(dir: &Path) -> (ImageSet, ImageSet) {
    std::fs::create_dir_all(dir).unwrap();
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    std::fs::write(dir.join("batches.meta.txt"), names.join("\n") + "\n\n").unwrap();
    let mut train = ImageSet::empty([3, 32, 32], names.iter().map(|s| s.to_string()).collect());
    for (b, file) in CIFAR10_TRAIN_FILES.iter().enumerate() {
        let mut batch = synthetic_set(CIFAR10_BATCH_IMAGES, 10, 32, b as u64);
        batch.classes = train.classes.clone();
        cifar_binary::write_cifar10_records(&dir.join(file), &batch).unwrap();
        train.pixels.extend_from_slice(&batch.pixels);
        train.labels.extend_from_slice(&batch.labels);
    }
    let mut test = synthetic_set(CIFAR10_BATCH_IMAGES, 10, 32, 99);
    test.classes = train.classes.clone();
    cifar_binary::write_cifar10_records(&dir.join("test_batch.bin"), &test).unwrap();
    (train, test)
}

/// Writes an image folder dataset (PNG) with `per_class` training and `per_class / 2` test
/// images per class.
pub fn write_image_folder(root: &Path, k: usize, per_class: usize, side: usize) {
    image_folder::write_split(
        &root.join("train"),
        &synthetic_set(k * per_class, k, side, 1),
    )
    .unwrap();
    image_folder::write_split(
        &root.join("test"),
        &synthetic_set(k * per_class / 2, k, side, 2),
    )
    .unwrap();
}

/// Runs the `visionnet` binary with `args`.
pub fn visionnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_visionnet"))
        .args(args)
        .output()
        .expect("the visionnet binary runs")
}

/// Asserts the command failed cleanly (non-zero exit, no panic) and its stderr mentions every
/// string of `needles`. Returns stderr.
#[track_caller]
pub fn assert_clean_failure(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert_ne!(
        output.status.code(),
        Some(101),
        "exit code 101 is a panic: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks '{needle}': {stderr}");
    }
    stderr
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn assert_success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "failed: stdout {stdout}\nstderr {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every file below `dir` with its bytes, sorted by path: to check nothing changed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// Deterministic values in `[-1, 1)` from `seed` (no device RNG, so tests stay independent).
pub fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// A tensor's values as `f32`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest difference of `got` from `want`, relative to `want`'s largest magnitude.
pub fn rel_err<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let (got, want) = (to_vec(got), to_vec(want));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

/// The grid of the grid, report and cluster tests: two tiny CNNs (`cnn`, and `cnn-b`, narrower,
/// with `cnn` as its twin) on one synthetic image folder (`data`: 3 classes of 16x16 images)
/// and one constant-rate Adam recipe, so its runs are `synth/adam/<model>/seed-<s>`.
pub struct TinyGrid {
    pub description: &'static str,
    /// The output folder, relative to the grid file.
    pub out: &'static str,
    pub seeds: Vec<u64>,
    pub lr: f64,
    pub epochs: usize,
    /// `cnn-b`'s widths (`cnn` has 8 at every stage).
    pub narrow: [usize; 4],
    /// Training images per class (half as many test images).
    pub per_class: usize,
}

impl Default for TinyGrid {
    fn default() -> Self {
        TinyGrid {
            description: "tiny",
            out: "out",
            seeds: vec![0, 1],
            lr: 0.01,
            epochs: 2,
            narrow: [4, 8, 8, 8],
            per_class: 16,
        }
    }
}

impl TinyGrid {
    /// The grid file's text.
    pub fn toml(&self) -> String {
        let TinyGrid {
            description,
            out,
            seeds,
            lr,
            epochs,
            narrow,
            ..
        } = self;
        format!(
            r#"
description = "{description}"
out = "{out}"
seeds = {seeds:?}

[defaults]
val-size = 6
batch-size = 8
hidden = [8, 8, 8]

[datasets.synth]
data = "data"

[models.cnn]
widths = [8, 8, 8, 8]

[models.cnn-b]
model = "cnn"
widths = {narrow:?}
twin = "cnn"

[recipes.adam]
optimizer = "adam"
lr = {lr}
schedule = "constant"
epochs = {epochs}
"#
        )
    }

    /// Writes `dir/grid.toml` and, unless it is there, its data folder `dir/data`; returns the
    /// grid file's path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let data = dir.join("data");
        if !data.exists() {
            write_image_folder(&data, 3, self.per_class, 16);
        }
        let grid = dir.join("grid.toml");
        std::fs::write(&grid, self.toml()).unwrap();
        grid
    }
}

/// A training configuration from train flags (the CLI's defaults for the rest), parsed as
/// `visionnet train` parses them.
pub fn train_config(args: &[&str]) -> TrainConfig {
    let tokens: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    flags::parse(&tokens).unwrap()
}

/// Options of a run without progress output.
pub fn quiet_run() -> RunOptions {
    RunOptions {
        quiet: true,
        ..Default::default()
    }
}

/// Options of a grid without progress output.
pub fn quiet_grid() -> ExperimentOptions {
    ExperimentOptions {
        quiet: true,
        ..Default::default()
    }
}

/// `rows` with their wall-clock fields zeroed (they differ between any two runs).
pub fn without_timing(rows: &[EpochMetrics]) -> Vec<EpochMetrics> {
    rows.iter()
        .map(|r| EpochMetrics {
            seconds: 0.0,
            images_per_second: 0.0,
            ..r.clone()
        })
        .collect()
}

/// The first test image of `class` in the image folder dataset `data`.
pub fn first_test_image(data: &Path, class: &str) -> PathBuf {
    let folder = data.join("test").join(class);
    folder.read_dir().unwrap().next().unwrap().unwrap().path()
}

/// Writes a `width x height` RGB PNG of one grey `level` to `path`: an image of another size
/// than the model's.
pub fn write_flat_png(path: &Path, width: u32, height: u32, level: u8) {
    let pixels = vec![level; (width * height * 3) as usize];
    image::save_buffer(path, &pixels, width, height, image::ExtendedColorType::Rgb8).unwrap();
}

/// Logits of a run's final model on a fixed batch of 4 inputs: equal for two runs that ended
/// with the same weights.
pub fn final_logits(run_dir: &Path) -> Vec<f32> {
    let device = Device::flex();
    let (_, meta, model) = checkpoint::load_model(run_dir, &device).unwrap();
    let [c, h, w] = meta.input_shape;
    let inputs: Vec<f32> = (0..4 * c * h * w).map(|i| (i % 17) as f32 / 17.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(inputs, [4, c, h, w]), &device);
    model.forward(x).into_data().try_to_vec::<f32>().unwrap()
}
