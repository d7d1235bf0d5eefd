//! `visionnet eval` and `visionnet predict`.

use std::path::PathBuf;

use anyhow::bail;
use burn::tensor::activation::softmax;

use crate::data::image_file::{SizePolicy, read_rgb};
use crate::data::{Cifar100Labels, Dataset, HostBatch, ImageSet, augment};
use crate::device::DeviceKind;
use crate::train::checkpoint;
use crate::train::evaluate::{batch_tensors, evaluate};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Dataset folder whose test set to evaluate on.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value_t = Cifar100Labels::Fine)]
    labels: Cifar100Labels,
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
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Image files (PNG, JPEG, BMP, PPM); resized to the model's input size if they differ.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Classes to list per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let (ckpt, meta, model) = checkpoint::load_model(&args.checkpoint, &device)?;
    let data = Dataset::load(&args.data, args.labels)?;
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
    let (evaluation, _) = evaluate(&model, &data.test, &meta.normalize, args.batch_size as usize, &device)?;
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
        println!("  {:<16} {:6.2}%  ({} images)", class.class, 100.0 * class.accuracy, class.count);
    }
    Ok(())
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let (_, meta, model) = checkpoint::load_model(&args.checkpoint, &device)?;
    let shape = meta.input_shape;
    let mut set = ImageSet::empty(shape, meta.classes.clone());
    for path in &args.images {
        let file = read_rgb(path, shape, SizePolicy::Resize)?;
        if file.resized {
            eprintln!("note: {} resized to {}x{}", path.display(), shape[2], shape[1]);
        }
        set.pixels.extend_from_slice(&file.pixels);
        set.labels.push(0);
    }
    let indices: Vec<usize> = (0..set.len()).collect();
    let batch: HostBatch = crate::data::batches::host_batch(&set, &indices, augment::Augment::NONE, &meta.normalize, 0);
    let (images, _) = batch_tensors(batch, &device);
    let probs = softmax(model.forward(images), 1); // [n, classes]
    let k = meta.classes.len();
    let values = probs.into_data_as::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
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
