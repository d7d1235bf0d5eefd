//! The training loop: epochs of optimizer steps, validation, metrics, checkpoints, and the final
//! test evaluation. Resumable: a resumed run finishes exactly as an uninterrupted one would.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::checkpoint::{self, CheckpointMeta, PartialEpoch};
use super::config::{Finetune, TrainConfig};
use super::evaluate::{evaluate, evaluate_flip_tta, evaluate_with};
use super::features::{FeatureCache, Features};
use super::interrupt;
use super::manifest::{DataRecord, RunManifest, build_info};
use super::metrics::{EpochMetrics, MetricsCsv, Summary};
use super::optimizer;
use super::progress::Progress;
use super::recipe::StepHooks;
use super::run_lock::{self, RunLock};
use super::schedule::Schedule;
use super::tensorboard::EventWriter;
use crate::data::batches::{epoch_order, mix_seed};
use crate::data::{Dataset, EpochPlan, Normalize, Splits};
use crate::error::{Error, IoContext, Result};
use crate::io::{read_json, write_csv, write_json};
use crate::model::import::{self, Scope};
use crate::model::table::network_config;
use crate::model::{ImageClassifier, ImageClassifierConfig, Network};

/// Salts that keep the run's random streams apart.
mod stream {
    pub const INIT: u64 = 0x1;
    pub const DROPOUT: u64 = 0x2;
    pub const AUGMENT: u64 = 0x3;
}

/// How a run is carried out (not part of what it computes).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Stop after this epoch, leaving the run resumable.
    pub stop_after: Option<usize>,
    /// No progress output.
    pub quiet: bool,
    /// Checkpoints kept (the newest).
    pub keep_checkpoints: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            stop_after: None,
            quiet: false,
            keep_checkpoints: 1,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunEnd {
    /// All epochs trained and the test set evaluated.
    Finished(Box<Summary>),
    /// Stopped after this epoch by [`RunOptions::stop_after`]; resumable.
    Stopped(usize),
}

/// The result of [`train`] or [`resume`].
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// One row per completed epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Finished or stopped.
    pub end: RunEnd,
    /// Set when SIGINT / SIGTERM stopped the run after a step: the signal and the checkpoint
    /// written then (`end` is then `Stopped` with the epochs completed).
    pub interrupted: Option<(i32, PathBuf)>,
}

/// Initialises every lazily-initialised parameter now, in module order, so initialisation draws
/// from the seeded generator at a fixed point rather than at first use.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// The data, model and bookkeeping of a run, ready to train.
struct Prepared {
    config: TrainConfig,
    run_dir: PathBuf,
    splits: Splits,
    norm: Normalize,
    device: Device,
    model: Network,
    optimizer: ModuleOptimizer,
    /// EMA, lookahead, selective weight decay (each when configured).
    hooks: StepHooks,
    /// Epochs already completed (0 for a fresh run).
    start_epoch: usize,
    /// Optimizer steps already taken.
    start_step: usize,
    /// How far the epoch after `start_epoch` got before a signal stopped it.
    partial: Option<PartialEpoch>,
    metrics: Vec<EpochMetrics>,
    /// The run folder's lock, held until the run ends ([`run_lock`]).
    lock: RunLock,
}

/// The default run directory: `runs/<model>-<date>-<time>`, made unique.
fn default_run_dir(model: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let base = PathBuf::from("runs").join(format!("{model}-{stamp}"));
    let mut dir = base.clone();
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

/// Loads and splits the data of `config`.
fn load_splits(config: &TrainConfig) -> Result<(Dataset, Splits, Normalize)> {
    let root = config
        .data
        .as_ref()
        .ok_or_else(|| Error::invalid("--data", "a dataset folder is required"))?;
    let data = Dataset::load(root, config.labels)?;
    let splits = Splits::carve(
        &data,
        config.val_size,
        config.train_limit.map(|n| n as usize),
        config.seed,
    )?;
    let batch = config.batch_size as usize;
    if batch < 2 {
        return Err(Error::invalid(
            "--batch-size",
            "BatchNorm needs at least 2 images per step",
        ));
    }
    let [_, h, w] = splits.train.shape;
    if config.cutout > h.min(w) {
        return Err(Error::invalid(
            "--cutout",
            format!("{} pixels is more than the {h}x{w} images", config.cutout),
        ));
    }
    if batch > splits.train.len() {
        return Err(Error::invalid(
            "--batch-size",
            format!(
                "{batch} is more than the {} training images",
                splits.train.len()
            ),
        ));
    }
    let pretrained_norm = match &config.pretrained {
        Some(_) => import::input_normalization(&network_config(
            &config.model_spec(),
            splits.train.num_classes(),
            splits.train.shape,
        )?),
        None => None,
    };
    let norm = if let (true, Some((mean, std))) = (config.normalize, pretrained_norm) {
        // Pretrained weights expect the inputs they were trained on.
        Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    } else if config.normalize {
        let (mean, std) = splits.train.channel_stats();
        if std.iter().any(|s| *s <= 0.0) {
            return Err(Error::data(
                root,
                "a channel is constant over the training set: cannot normalise (use --normalize false)",
            ));
        }
        Normalize { mean, std }
    } else {
        Normalize::identity(splits.train.shape[0])
    };
    Ok((data, splits, norm))
}

fn data_record(data: &Dataset, splits: &Splits) -> DataRecord {
    DataRecord {
        root: data.root.display().to_string(),
        format: data.format,
        classes: data.classes().to_vec(),
        image_shape: data.train.shape,
        train_images: splits.train.len(),
        val_images: splits.val.len(),
        test_images: splits.test.len(),
        fingerprints: [
            splits.train.fingerprint(),
            splits.val.fingerprint(),
            splits.test.fingerprint(),
        ],
    }
}

/// Builds the model of `config` with seeded initialisation, then loads the `--pretrained`
/// weights into its backbone (the head stays freshly initialised for this dataset's classes).
fn init_model(config: &TrainConfig, splits: &Splits, device: &Device) -> Result<Network> {
    let net = network_config(
        &config.model_spec(),
        splits.train.num_classes(),
        splits.train.shape,
    )?;
    net.check_naive_attention_memory(&config.model, config.batch_size as usize, 4, "--batch-size")?;
    net.check_naive_attention_memory(
        &config.model,
        config.eval_batch_size as usize,
        2,
        "--eval-batch-size",
    )?;
    device.seed(mix_seed(&[config.seed, stream::INIT]));
    let model = net.init(device)?;
    model.visit(&mut Materialize);
    match &config.pretrained {
        Some(path) => Ok(import::load(model, &net, path, Scope::Backbone)?.0),
        None => Ok(model),
    }
}

/// Applies `--finetune`: with `head`, the backbone is frozen (weights and BatchNorm statistics).
fn apply_finetune(config: &TrainConfig, model: Network) -> Network {
    match config.finetune {
        Finetune::Full => model,
        Finetune::Head => model.freeze_backbone(),
    }
}

/// With `--cache-features`, the pooled backbone features of every image, computed once.
fn feature_cache(
    config: &TrainConfig,
    model: &Network,
    splits: &Splits,
    norm: &Normalize,
    progress: &Progress,
) -> Result<Option<FeatureCache>> {
    if !config.cache_features {
        return Ok(None);
    }
    let started = Instant::now();
    let backbone = model.valid();
    let device = config.device.device()?;
    let batch = config.eval_batch_size as usize;
    let cache = FeatureCache {
        train: Features::compute(&backbone, &splits.train, norm, batch, &device)?,
        val: Features::compute(&backbone, &splits.val, norm, batch, &device)?,
        test: Features::compute(&backbone, &splits.test, norm, batch, &device)?,
    };
    let images = splits.train.len() + splits.val.len() + splits.test.len();
    progress.line(&format!(
        "cached {}-value backbone features of {images} images in {:.1} s",
        cache.train.dim,
        started.elapsed().as_secs_f64()
    ));
    Ok(Some(cache))
}

/// Prepares a fresh run. Everything is checked before the run directory is created.
fn prepare_fresh(mut config: TrainConfig) -> Result<Prepared> {
    config.validate()?;
    let device = config.device.autodiff_device()?;
    let run_dir = config
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(&config.model));
    check_empty(&run_dir)?;
    crate::error::check_output_dir(&run_dir, "--run-dir")?;
    let (data, splits, norm) = load_splits(&config)?;
    let model = apply_finetune(&config, init_model(&config, &splits, &device)?);
    config.run_dir = Some(run_dir.clone());
    // Locked, then checked again: another process may have started this run meanwhile.
    let lock = run_lock::acquire(&run_dir)?;
    check_empty(&run_dir)?;
    let (crate_version, git_commit) = build_info();
    let manifest = RunManifest {
        seed: config.seed,
        config: config.clone(),
        crate_version,
        git_commit,
        backend: format!("{:?}", config.device).to_lowercase(),
        threads: rayon::current_num_threads(),
        data: data_record(&data, &splits),
        started: chrono::Local::now().to_rfc3339(),
    };
    write_json(&run_dir.join("run.json"), &manifest)?;
    Ok(Prepared {
        optimizer: optimizer::build(&config),
        hooks: StepHooks::fresh(&config, &model),
        config,
        run_dir,
        splits,
        norm,
        device,
        model,
        start_epoch: 0,
        start_step: 0,
        partial: None,
        metrics: Vec::new(),
        lock,
    })
}

/// A fresh run needs a folder that is new or empty (its lock and leftover temporary files
/// aside).
fn check_empty(run_dir: &Path) -> Result<()> {
    if !run_dir.exists() {
        return Ok(());
    }
    run_lock::check_free(run_dir)?;
    for entry in fs::read_dir(run_dir).at(run_dir)? {
        if !run_lock::is_bookkeeping(&entry.at(run_dir)?.file_name().to_string_lossy()) {
            return Err(Error::invalid(
                "--run-dir",
                format!(
                    "{} already holds files; continue it with `--resume {0}` or choose another --run-dir",
                    run_dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Prepares to continue the run in `run_dir` from its newest checkpoint.
fn prepare_resume(run_dir: &Path) -> Result<Prepared> {
    let manifest_path = run_dir.join("run.json");
    if !manifest_path.is_file() {
        return Err(Error::invalid(
            "--resume",
            format!("{} holds no run (no run.json)", run_dir.display()),
        ));
    }
    let lock = run_lock::acquire(run_dir)?;
    let manifest: RunManifest = read_json(&manifest_path)?;
    let config = manifest.config.clone();
    let device = config.device.autodiff_device()?;
    let (data, splits, norm) = load_splits(&config)?;
    let now = data_record(&data, &splits);
    if now.fingerprints != manifest.data.fingerprints {
        return Err(Error::data(
            &data.root,
            format!(
                "the data differ from those {} was trained on (fingerprints changed)",
                run_dir.display()
            ),
        ));
    }
    let mut model = init_model(&config, &splits, &device)?;
    let mut optimizer = optimizer::build(&config);
    let (mut start_epoch, mut start_step, mut partial) = (0, 0, None);
    let latest = checkpoint::latest(run_dir)?;
    if let Some(ckpt) = &latest {
        let meta = checkpoint::read_meta(ckpt)?;
        checkpoint::check_model(ckpt, &meta, &config.model_spec())?;
        model = checkpoint::load_weights(ckpt, model)?;
        optimizer = checkpoint::load_optimizer(ckpt, optimizer)?;
        start_epoch = meta.epoch;
        start_step = meta.step;
        partial = meta.partial;
    }
    let model = apply_finetune(&config, model);
    let hooks = StepHooks::resume(&config, &model, latest.as_deref(), start_step)?;
    let mut metrics = MetricsCsv::new(run_dir).read()?;
    metrics.retain(|m| m.epoch <= start_epoch);
    Ok(Prepared {
        config,
        run_dir: run_dir.to_path_buf(),
        splits,
        norm,
        device,
        model,
        optimizer,
        hooks,
        start_epoch,
        start_step,
        partial,
        metrics,
        lock,
    })
}

/// Why a pass over an epoch's batches ended early.
enum Halt {
    Failed(Error),
    /// SIGINT / SIGTERM arrived; the step in progress was finished.
    Signal(i32),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Failed(e)
    }
}

/// Serialises runs within one process. burn keeps one random generator per device, shared by
/// every thread: two runs drawing from it at once (initialisation, dropout) would make each
/// other irreproducible. Separate processes are independent.
static RUN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive<T>(f: impl FnOnce() -> T) -> T {
    let _guard = RUN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f()
}

/// Trains a fresh run of `config`.
pub fn train(config: TrainConfig, options: &RunOptions) -> Result<TrainOutcome> {
    exclusive(|| run(prepare_fresh(config)?, options))
}

/// Continues the run in `run_dir` from its newest checkpoint, with the configuration it was
/// started with.
pub fn resume(run_dir: &Path, options: &RunOptions) -> Result<TrainOutcome> {
    exclusive(|| run(prepare_resume(run_dir)?, options))
}

/// Evaluates `model` on `set`, from cached features when there are some.
fn evaluate_split(
    model: &Network,
    set: &crate::data::ImageSet,
    cached: Option<&Features>,
    norm: &Normalize,
    batch_size: usize,
    device: &Device,
) -> Result<(super::metrics::Evaluation, Vec<super::metrics::Prediction>)> {
    match cached {
        Some(features) => evaluate_with(set, norm, batch_size, |b| {
            model.classify(features.rows(&b.indices, device))
        }),
        None => evaluate(model, set, norm, batch_size, device),
    }
}

fn run(p: Prepared, options: &RunOptions) -> Result<TrainOutcome> {
    let Prepared {
        config,
        run_dir,
        splits,
        norm,
        device,
        model,
        mut optimizer,
        mut hooks,
        start_epoch,
        start_step,
        partial,
        mut metrics,
        lock,
    } = p;
    if let Some(was) = &lock.took_over {
        eprintln!("took over the stale lock of {}: {was}", run_dir.display());
    }
    let epochs = config.epochs as usize;
    let batch_size = config.batch_size as usize;
    let steps_per_epoch = splits.train.len() / batch_size;
    let schedule = Schedule {
        kind: config.schedule,
        peak: config.lr,
        total_steps: steps_per_epoch * epochs,
        warmup: config.warmup,
    };
    let smoothing = (config.label_smoothing > 0.0).then_some(config.label_smoothing as f32);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(&device);
    let inference_device = device.clone().inner();
    let meta = |epoch: usize, step: usize| CheckpointMeta {
        format_version: checkpoint::FORMAT_VERSION,
        epoch,
        step,
        model: config.model_spec(),
        classes: splits.train.classes.clone(),
        input_shape: splits.train.shape,
        normalize: norm.clone(),
        seed: config.seed,
        partial: None,
    };

    let metrics_csv = MetricsCsv::new(&run_dir);
    metrics_csv.write(&metrics)?;
    let mut events = EventWriter::create(&run_dir.join("tensorboard"))?;
    let mut progress = Progress::new(epochs, options.quiet);
    if start_epoch > 0 {
        progress.line(&format!(
            "resuming {} after epoch {start_epoch}",
            run_dir.display()
        ));
    }
    let cache = feature_cache(&config, &model, &splits, &norm, &progress)?;
    let mut step = start_step;
    // The optimizer consumes the model and returns the updated one; holding it in an Option lets
    // the step closure move it out and back without a second handle to its tensors (which would
    // force copies instead of in-place updates).
    let mut slot = Some(model);
    for epoch in start_epoch + 1..=epochs {
        let started = Instant::now();
        let plan = EpochPlan {
            order: epoch_order(splits.train.len(), config.seed, epoch, true),
            batch_size,
            drop_last: true,
            augment: config.augment(),
            seed: mix_seed(&[config.seed, stream::AUGMENT, epoch as u64]),
        };
        progress.start_epoch(epoch, plan.num_batches());
        // An epoch a signal interrupted continues from its next batch with its running sums.
        let resumed = partial.clone().filter(|_| epoch == start_epoch + 1);
        let first = resumed.as_ref().map_or(0, |p| p.batches);
        let (mut loss_sum, mut correct, mut seen) = resumed
            .as_ref()
            .map_or((0.0f64, 0i64, 0usize), |p| (p.loss_sum, p.correct, p.seen));
        let earlier_seconds = resumed.as_ref().map_or(0.0, |p| p.seconds);
        let mut lr = schedule.lr(step);
        let mut done = first;
        let pass = plan.for_each_from(
            first,
            &splits.train,
            &norm,
            |b, batch| -> std::result::Result<(), Halt> {
                // Dropout draws are seeded per batch, so a resumed epoch draws what a whole one does.
                device.seed(mix_seed(&[
                    config.seed,
                    stream::DROPOUT,
                    epoch as u64,
                    b as u64,
                ]));
                let n = batch.labels.len();
                let model = slot.take().expect("the model is always put back");
                let (logits, labels) = match &cache {
                    // Only the head runs on cached features: [n, dim] -> [n, classes].
                    Some(c) => {
                        let labels = Tensor::<1, Int>::from_data(
                            TensorData::new(batch.labels, [n]),
                            &device,
                        );
                        (
                            model.classify(c.train.rows(&batch.indices, &device)),
                            labels,
                        )
                    }
                    None => {
                        let (images, labels) = batch.into_tensors(&device);
                        (model.forward(images), labels) // [n, classes]
                    }
                };
                let loss = loss_fn.forward(logits.clone(), labels.clone());
                let loss_value = loss.clone().into_scalar::<f64>();
                if !loss_value.is_finite() {
                    let last_good = checkpoint::latest(&run_dir)?
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "none (no epoch completed)".to_string());
                    slot = Some(model);
                    return Err(Halt::Failed(Error::Diverged {
                        value: format!("{loss_value}"),
                        epoch,
                        step: b + 1,
                        last_good,
                    }));
                }
                correct += logits
                    .argmax(1)
                    .squeeze_dim::<1>(1)
                    .equal(labels)
                    .int()
                    .sum()
                    .into_scalar::<i64>();
                loss_sum += loss_value * n as f64;
                seen += n;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                lr = schedule.lr(step);
                let (model, grads) = hooks.before_step(model, grads, lr);
                let model = optimizer.step(lr, model, grads);
                step += 1;
                slot = Some(hooks.after_step(step, model));
                done = b + 1;
                progress.step(n, loss_sum / seen as f64, correct as f64 / seen as f64);
                match interrupt::requested() {
                    Some(signal) if done < plan.num_batches() => Err(Halt::Signal(signal)),
                    _ => Ok(()),
                }
            },
        );
        match pass {
            Ok(()) => {}
            Err(Halt::Failed(e)) => return Err(e),
            Err(Halt::Signal(signal)) => {
                let model = slot.as_ref().expect("the model is always put back");
                let mut m = meta(epoch - 1, step);
                m.partial = Some(PartialEpoch {
                    batches: done,
                    loss_sum,
                    correct,
                    seen,
                    seconds: earlier_seconds + started.elapsed().as_secs_f64(),
                });
                let dir = checkpoint::save(
                    &run_dir,
                    &m,
                    model,
                    &optimizer,
                    &hooks.checkpoint_models(),
                    options.keep_checkpoints,
                )?;
                return Ok(TrainOutcome {
                    run_dir,
                    metrics,
                    end: RunEnd::Stopped(epoch - 1),
                    interrupted: Some((signal, dir)),
                });
            }
        }
        let train_seconds = earlier_seconds + started.elapsed().as_secs_f64();
        let model = slot.as_ref().expect("the model is always put back");
        let evaluated = hooks.evaluated(model);
        let (val_loss, val_accuracy, val_accuracy_tta) = if splits.val.is_empty() {
            (None, None, None)
        } else {
            let (val, _) = evaluate_split(
                &evaluated,
                &splits.val,
                cache.as_ref().map(|c| &c.val),
                &norm,
                config.eval_batch_size as usize,
                &inference_device,
            )?;
            let tta = match config.tta_flip {
                true => Some(
                    evaluate_flip_tta(
                        &evaluated,
                        &splits.val,
                        &norm,
                        config.eval_batch_size as usize,
                        &inference_device,
                    )?
                    .0
                    .accuracy,
                ),
                false => None,
            };
            (Some(val.loss), Some(val.accuracy), tta)
        };
        let row = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            val_accuracy_tta,
            lr,
            seconds: earlier_seconds + started.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
        };
        progress.end_epoch(&row);
        checkpoint::save(
            &run_dir,
            &meta(epoch, step),
            model,
            &optimizer,
            &hooks.checkpoint_models(),
            options.keep_checkpoints,
        )?;
        metrics.push(row.clone());
        metrics_csv.write(&metrics)?;
        let mut scalars = vec![
            ("train/loss", row.train_loss),
            ("train/accuracy", row.train_accuracy),
            ("lr", row.lr),
            ("images_per_second", row.images_per_second),
        ];
        if let (Some(l), Some(a)) = (row.val_loss, row.val_accuracy) {
            scalars.extend([("val/loss", l), ("val/accuracy", a)]);
        }
        if let Some(a) = row.val_accuracy_tta {
            scalars.push(("val/accuracy_tta", a));
        }
        events.scalars(epoch as i64, &scalars)?;
        let signal = interrupt::requested().filter(|_| epoch < epochs);
        if (options.stop_after == Some(epoch) && epoch < epochs) || signal.is_some() {
            let interrupted = signal.map(|s| {
                (
                    s,
                    checkpoint::latest(&run_dir)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                )
            });
            return Ok(TrainOutcome {
                run_dir,
                metrics,
                end: RunEnd::Stopped(epoch),
                interrupted,
            });
        }
    }

    let model = hooks.evaluated(&slot.expect("the model is always put back"));
    let (test, predictions) = evaluate_split(
        &model,
        &splits.test,
        cache.as_ref().map(|c| &c.test),
        &norm,
        config.eval_batch_size as usize,
        &inference_device,
    )?;
    write_csv(&run_dir.join("predictions.csv"), &predictions)?;
    let test_tta = match config.tta_flip {
        true => {
            let (tta, predictions) = evaluate_flip_tta(
                &model,
                &splits.test,
                &norm,
                config.eval_batch_size as usize,
                &inference_device,
            )?;
            write_csv(&run_dir.join("predictions-tta.csv"), &predictions)?;
            Some(tta)
        }
        false => None,
    };
    let best_val_accuracy = metrics
        .iter()
        .filter_map(|m| m.val_accuracy.map(|a| (a, m.epoch)))
        .fold(None, |best: Option<(f64, usize)>, (a, e)| match best {
            Some((b, _)) if b >= a => best,
            _ => Some((a, e)),
        });
    let mut speeds: Vec<f64> = metrics.iter().map(|m| m.images_per_second).collect();
    speeds.sort_by(f64::total_cmp);
    let summary = Summary {
        model: config.model.clone(),
        epochs,
        classes: splits.test.classes.clone(),
        test,
        test_tta,
        weights: hooks.weights().to_string(),
        best_val_accuracy,
        train_seconds: metrics.iter().map(|m| m.seconds).sum(),
        images_per_second: speeds.get(speeds.len() / 2).copied().unwrap_or(0.0),
    };
    write_json(&run_dir.join("summary.json"), &summary)?;
    let tta = summary
        .test_tta
        .as_ref()
        .map(|t| format!(", with flip TTA {:.2}%", 100.0 * t.accuracy))
        .unwrap_or_default();
    progress.line(&format!(
        "test accuracy {:.2}% ({} images){tta}, loss {:.4}; run in {}",
        100.0 * summary.test.accuracy,
        summary.test.images,
        summary.test.loss,
        run_dir.display()
    ));
    Ok(TrainOutcome {
        run_dir,
        metrics,
        end: RunEnd::Finished(Box::new(summary)),
        interrupted: None,
    })
}
