//! Everything a training run is configured by: the `train` flags, which are also the keys of
//! its TOML config file (`--config`), and which `run.json` records in full.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::data::{Augment, Cifar100Labels};
use crate::device::DeviceKind;
use crate::error::{Error, Result};
use crate::model::{ModelOptions, ModelSpec};

/// Optimizers the study compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (the study's default), L2 weight decay.
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with momentum (and Nesterov if asked), L2 weight decay.
    Sgd,
    /// RMSprop with momentum, L2 weight decay.
    Rmsprop,
}

/// How the learning rate evolves over the run (per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// `lr` throughout (the study).
    Constant,
    /// Linear warm-up over `warmup` of the run, then cosine decay to 0.
    Cosine,
    /// One-cycle: linear warm-up over `warmup` of the run to `lr`, then linear decay to 0.
    Onecycle,
}

/// What trains when fine-tuning (the study's Table 1: full fine-tuning vs. a frozen backbone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Finetune {
    /// Every weight trains (from `--pretrained` weights or from scratch).
    #[default]
    Full,
    /// Only the head trains; the backbone's weights and BatchNorm statistics are frozen.
    Head,
}

/// Parses a number that must be strictly positive and finite.
fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{v} must be a finite number > 0"));
    }
    Ok(v)
}

/// Parses a number in `[0, 1)`.
fn fraction(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..1.0).contains(&v) {
        return Err(format!("{v} must be in [0, 1)"));
    }
    Ok(v)
}

/// Parses a number in `(0, 1]`.
fn unit_interval(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v > 0.0 && v <= 1.0) {
        return Err(format!("{v} must be in (0, 1]"));
    }
    Ok(v)
}

/// Serde defaults of options added after runs were recorded (their `run.json` lacks them).
fn yes() -> bool {
    true
}

fn half() -> f64 {
    0.5
}

/// Parses a number that must be finite and >= 0.
fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{v} must be a finite number >= 0"));
    }
    Ok(v)
}

/// A training run's configuration. Defaults are the tuned recipe documented in the README;
/// `configs/study.toml` holds the study's own recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(rename_all = "kebab-case")]
pub struct TrainConfig {
    // ---- data ----
    /// Dataset folder: CIFAR-10/100 binary, or an image folder with train/ and test/.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value_t = Cifar100Labels::Fine)]
    #[serde(default)]
    pub labels: Cifar100Labels,
    /// Validation images carved from train (stratified, seeded); 0 for none.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub val_size: usize,
    /// Train on a stratified subset of this many of the remaining training images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,
    /// Random-crop padding in pixels (0 disables random crops).
    #[arg(long, default_value_t = 4, value_name = "PIXELS")]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub flip: bool,
    /// Cutout: zero (in normalised space: the mean colour) one random square of this many
    /// pixels a side, lying inside each training image; 0 disables it.
    #[arg(long, default_value_t = 0, value_name = "PIXELS")]
    #[serde(default)]
    pub cutout: usize,
    /// Normalise by the training set's per-channel mean and std (else scale to [0, 1]).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub normalize: bool,

    // ---- model ----
    /// Model to train (see `visionnet models`).
    #[arg(long, default_value = "cnn")]
    pub model: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub model_options: ModelOptions,

    // ---- transfer ----
    /// Weight file to start from: safetensors or a PyTorch .pth/.pt with the model's reference
    /// parameter names (torchvision, timm, lukemelas). The backbone is loaded; the head is new
    /// (sized for this dataset's classes). Inputs are then normalised as the weights expect.
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// What trains: every weight, or only the head with the backbone (and its BatchNorm
    /// statistics) frozen.
    #[arg(long, value_enum, default_value_t = Finetune::Full)]
    #[serde(default)]
    pub finetune: Finetune,
    /// With `--finetune head`: compute the frozen backbone's pooled features once per image and
    /// train the head on them (a linear probe in minutes). Needs augmentation off
    /// (`--crop-padding 0 --flip false`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    #[serde(default)]
    pub cache_features: bool,

    // ---- optimisation ----
    /// Passes over the training set.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Images per training step.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Peak learning rate (0.1: the one change of issue 17's recipe A/B that helped over both
    /// seeds, docs/training.md).
    #[arg(long, default_value_t = 0.1, value_parser = positive_f64)]
    pub lr: f64,
    /// Momentum of SGD and RMSprop.
    #[arg(long, default_value_t = 0.9, value_parser = fraction)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub nesterov: bool,
    /// Weight decay (L2 penalty; decoupled for AdamW).
    #[arg(long, default_value_t = 5e-4, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Onecycle)]
    pub schedule: ScheduleKind,
    /// Fraction of the run spent warming up (cosine, onecycle).
    #[arg(long, default_value_t = 0.15, value_parser = fraction)]
    pub warmup: f64,
    /// Leave BatchNorm and bias parameters (every parameter of rank 1) out of the weight decay;
    /// conv and linear weights keep it.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    #[serde(default)]
    pub no_decay_bn_bias: bool,
    /// Keep an exponential moving average of the weights with this decay per step (e.g. 0.999)
    /// and evaluate it (validation and test) instead of the last weights; BatchNorm running
    /// statistics are averaged too. Off when not given.
    #[arg(long, value_name = "DECAY", value_parser = fraction)]
    #[serde(default)]
    pub ema: Option<f64>,
    /// With --ema: the decay of update t is min(DECAY, (1 + t) / (10 + t)), so early averages
    /// do not hold on to the random initialisation.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    #[serde(default = "yes")]
    pub ema_warmup: bool,
    /// Lookahead: every K optimizer steps the slow weights move --lookahead-alpha of the way to
    /// the fast ones, and the fast weights restart from them; 0 disables it.
    #[arg(long, default_value_t = 0, value_name = "K")]
    #[serde(default)]
    pub lookahead_k: u64,
    /// Lookahead's step towards the fast weights.
    #[arg(long, default_value_t = 0.5, value_parser = unit_interval)]
    #[serde(default = "half")]
    pub lookahead_alpha: f64,
    /// Also evaluate with flip test-time augmentation (logits averaged over each image and its
    /// mirror), reported beside the plain figures (`val_accuracy_tta`, `test_tta`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    #[serde(default)]
    pub tta_flip: bool,
    /// Label smoothing of the cross-entropy loss.
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    pub label_smoothing: f64,
    /// Seed of initialisation, splits, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    // ---- run ----
    /// Run directory (default: runs/<model>-<date>-<time>).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
    /// Images per evaluation step.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_batch_size: u64,
}

impl TrainConfig {
    /// The model this config trains.
    pub fn model_spec(&self) -> ModelSpec {
        ModelSpec {
            name: self.model.clone(),
            options: self.model_options.clone(),
        }
    }

    /// The augmentation of training images.
    pub fn augment(&self) -> Augment {
        Augment {
            crop_padding: self.crop_padding,
            flip: self.flip,
            cutout: self.cutout,
        }
    }

    /// Checks what flag parsing cannot: the data folder is given, values agree.
    pub fn validate(&self) -> Result<()> {
        if self.data.is_none() {
            return Err(Error::invalid("--data", "a dataset folder is required"));
        }
        crate::model::table::entry(&self.model)?;
        self.model_options.check_used(&self.model)?;
        if self.crop_padding > 64 {
            return Err(Error::invalid(
                "--crop-padding",
                format!("{} pixels is more than 64", self.crop_padding),
            ));
        }
        if self.cutout > 64 {
            return Err(Error::invalid(
                "--cutout",
                format!("{} pixels is more than 64", self.cutout),
            ));
        }
        if self.cache_features && self.tta_flip {
            return Err(Error::invalid(
                "--tta-flip",
                "cached features are those of the unflipped images (--cache-features true)",
            ));
        }
        if self.cache_features {
            if self.finetune != Finetune::Head {
                return Err(Error::invalid(
                    "--cache-features",
                    "caching backbone features needs a frozen backbone (--finetune head)",
                ));
            }
            if self.augment().is_active() {
                return Err(Error::invalid(
                    "--cache-features",
                    "cached features are computed once per image, so augmentation must be off \
                     (--crop-padding 0 --flip false)",
                ));
            }
        }
        if let Some(path) = &self.pretrained
            && !path.is_file()
        {
            return Err(Error::invalid(
                "--pretrained",
                format!("{}: no such file", path.display()),
            ));
        }
        Ok(())
    }
}
