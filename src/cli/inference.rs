//! `visionnet eval` and `visionnet predict`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::tensor::activation::softmax;

use crate::data::image_file::{SizePolicy, read_rgb};
use crate::data::{Cifar100Labels, Dataset, HostBatch, ImageSet, augment};
use crate::device::DeviceKind;
use crate::model::ImageClassifier;
use crate::model::import::pretrained;
use crate::train::checkpoint;
use crate::train::evaluate::evaluate;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long, value_name = "PATH", required_unless_present = "pretrained")]
    checkpoint: Option<PathBuf>,
    /// Evaluate imported weights with their own head instead of a checkpoint (needs --model
    /// and --labels): safetensors or PyTorch .pth/.pt, the reference implementation's names.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "checkpoint",
        requires = "model"
    )]
    pretrained: Option<PathBuf>,
    /// The model the --pretrained weights are for (e.g. efficientnet_lite0).
    #[arg(long, value_name = "MODEL", requires = "pretrained")]
    model: Option<String>,
    /// Dataset folder whose test set to evaluate on; with --pretrained, an image folder
    /// (`DIR/<class>/<images>` or `DIR/test/<class>/...`) whose class folders carry the
    /// --labels names.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// CIFAR-100 label set (`fine` or `coarse`); with --pretrained, a text file of the
    /// weights' class names, one per line.
    #[arg(long, default_value = "fine")]
    labels: String,
    /// Images per step.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long, value_name = "PATH", required_unless_present = "pretrained")]
    checkpoint: Option<PathBuf>,
    /// Predict with imported weights and their own head (e.g. ImageNet's 1,000 classes)
    /// instead of a checkpoint: safetensors or PyTorch .pth/.pt, the reference
    /// implementation's names; images get the weights' reference preprocessing (short side
    /// 256, centre crop 224, the weights' mean and std, for the ImageNet models).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "checkpoint",
        requires = "model"
    )]
    pretrained: Option<PathBuf>,
    /// The model the --pretrained weights are for (e.g. efficientnet_lite0).
    #[arg(long, value_name = "MODEL", requires = "pretrained")]
    model: Option<String>,
    /// With --pretrained: a text file of class names, one per line (else indices are printed).
    #[arg(long, value_name = "FILE", requires = "pretrained")]
    labels: Option<PathBuf>,
    /// Image files (PNG, JPEG, BMP, PPM); resized to the model's input size if they differ.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Classes to list per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
    /// Print the predictions as JSON (with --pretrained).
    #[arg(long, requires = "pretrained")]
    json: bool,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if let (Some(file), Some(model)) = (&args.pretrained, &args.model) {
        let net = pretrained::load(model, file, Some(Path::new(&args.labels)), &device)?;
        let e = net.evaluate(&args.data, args.batch_size as usize, &device)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&e)?);
            return Ok(());
        }
        println!(
            "{} with {} ({} names)",
            model,
            file.display(),
            net.report.naming
        );
        println!(
            "top-1 {:.2}%  top-5 {:.2}%  on {} images",
            100.0 * e.top1,
            100.0 * e.top5,
            e.images
        );
        for (class, n, acc) in &e.per_class {
            println!("  {class:<24} {:6.2}%  ({n} images)", 100.0 * acc);
        }
        return Ok(());
    }
    let labels =
        <Cifar100Labels as clap::ValueEnum>::from_str(&args.labels, true).map_err(|_| {
            anyhow::anyhow!(
                "--labels: '{}' is not a CIFAR-100 label set (fine, coarse)",
                args.labels
            )
        })?;
    let checkpoint = args
        .checkpoint
        .as_ref()
        .expect("clap requires --checkpoint without --pretrained");
    let (ckpt, meta, model) = checkpoint::load_model(checkpoint, &device)?;
    let data = Dataset::load(&args.data, labels)?;
    if data.classes() != meta.classes.as_slice() {
        bail!(
            "{}: its classes {:?} are not the {:?} that {} was trained on",
            args.data.display(),
            data.classes(),
            meta.classes,
            ckpt.display()
        );
    }
    if data.test.shape != meta.input_shape {
        bail!(
            "{}: its images are {:?}, the model takes {:?}",
            args.data.display(),
            data.test.shape,
            meta.input_shape
        );
    }
    let (evaluation, _) = evaluate(
        &model,
        &data.test,
        &meta.normalize,
        args.batch_size as usize,
        &device,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    println!("checkpoint {} (epoch {})", ckpt.display(), meta.epoch);
    println!(
        "test accuracy {:.2}% on {} images, loss {:.4}",
        100.0 * evaluation.accuracy,
        evaluation.images,
        evaluation.loss
    );
    for class in &evaluation.per_class {
        println!(
            "  {:<16} {:6.2}%  ({} images)",
            class.class,
            100.0 * class.accuracy,
            class.count
        );
    }
    Ok(())
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if let (Some(file), Some(model)) = (&args.pretrained, &args.model) {
        let net = pretrained::load(model, file, args.labels.as_deref(), &device)?;
        let ranked = net.predict(&args.images, args.top as usize, 16, &device)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&ranked)?);
            return Ok(());
        }
        for r in ranked {
            println!("{}", r.path.display());
            for (class, label, p) in r.top {
                if net.named {
                    println!("  {:8.4}%  {label} ({class})", 100.0 * p);
                } else {
                    println!("  {:8.4}%  {class}", 100.0 * p);
                }
            }
        }
        return Ok(());
    }
    let checkpoint = args
        .checkpoint
        .as_ref()
        .expect("clap requires --checkpoint without --pretrained");
    let (_, meta, model) = checkpoint::load_model(checkpoint, &device)?;
    let shape = meta.input_shape;
    let mut set = ImageSet::empty(shape, meta.classes.clone());
    for path in &args.images {
        let file = read_rgb(path, shape, SizePolicy::Resize)?;
        if file.resized {
            eprintln!(
                "note: {} resized to {}x{}",
                path.display(),
                shape[2],
                shape[1]
            );
        }
        set.pixels.extend_from_slice(&file.pixels);
        set.labels.push(0);
    }
    let indices: Vec<usize> = (0..set.len()).collect();
    let batch: HostBatch = crate::data::batches::host_batch(
        &set,
        &indices,
        augment::Augment::NONE,
        &meta.normalize,
        0,
    );
    let (images, _) = batch.into_tensors(&device);
    let probs = softmax(model.forward(images), 1); // [n, classes]
    let k = meta.classes.len();
    let values = probs
        .into_data_as::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (path, row) in args.images.iter().zip(values.chunks_exact(k)) {
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("{}", path.display());
        for (class, p) in ranked.into_iter().take(args.top as usize) {
            println!("  {:6.2}%  {}", 100.0 * p, meta.classes[class]);
        }
    }
    Ok(())
}
