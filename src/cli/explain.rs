//! `visionnet gradcam` and `visionnet compare`.

use std::path::PathBuf;

use crate::data::Cifar100Labels;
use crate::data::image_file::SizePolicy;
use crate::device::DeviceKind;
use crate::explain::compare::{self, CompareRequest, format_p};
use crate::explain::heatmaps::{self, HeatmapRequest, Inputs};
use crate::explain::{CamMethod, Colormap, OverlayStyle};

/// How maps are computed and drawn (shared by both commands).
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// Class the maps explain: `top` (the prediction), `label` (the true class), a class index
    /// or a class name.
    #[arg(long, default_value = "top", value_name = "top|label|INDEX|NAME")]
    class: String,
    /// Method.
    #[arg(long, value_enum, default_value_t = CamMethod::GradCam)]
    method: CamMethod,
    /// Output folder; must be new or empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Displayed pixels per input pixel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    scale: u32,
    /// Weight of the heat map when blended on the image (0..1).
    #[arg(long, default_value_t = 0.5, value_parser = unit_interval)]
    alpha: f32,
    /// Colour map.
    #[arg(long, value_enum, default_value_t = Colormap::Turbo)]
    colormap: Colormap,
    /// Samples per row of the figure.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    columns: u64,
    /// Images per pass.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value_t = Cifar100Labels::Fine)]
    labels: Cifar100Labels,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

fn unit_interval(text: &str) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not in [0, 1]")) }
}

impl MapArgs {
    fn style(&self) -> OverlayStyle {
        OverlayStyle {
            scale: self.scale,
            alpha: self.alpha,
            colormap: self.colormap,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["images", "data"])))]
pub struct GradcamArgs {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Layer to explain, as `visionnet models --layers MODEL` lists them (default: the 4th conv
    /// layer of the study's CNNs).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
    /// Image files (PNG, JPEG, BMP, PPM). One of another size than the model's input is resized
    /// (bilinear, with a note) unless --no-resize; one in a folder named after a class is
    /// labelled with it.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Refuse images of another size than the model's input instead of resizing them.
    #[arg(long)]
    no_resize: bool,
    /// Dataset folder: explain --samples of its test images instead of files.
    #[arg(long, value_name = "DIR", conflicts_with = "images", requires = "samples")]
    data: Option<PathBuf>,
    /// Test images to explain, drawn at random (seeded by --seed).
    #[arg(long, value_name = "N", requires = "data")]
    samples: Option<usize>,
    /// Seed of the choice of test images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    map: MapArgs,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Checkpoints A and B (checkpoint or run folders): give the flag twice.
    #[arg(long, value_name = "PATH", num_args = 1, required = true)]
    checkpoint: Vec<PathBuf>,
    /// Names of A and B on the figures, comma-separated (default: their run folders' names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    names: Option<Vec<String>>,
    /// Dataset folder whose test set both models are scored on.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Layer to explain: once for both models, or twice (A's, then B's). Default: each
    /// model's default layer.
    #[arg(long, value_name = "NAME")]
    layer: Vec<String>,
    /// Samples shown of each kind (A right and B wrong; the reverse).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    samples: u64,
    /// Seed of the choice of samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    map: MapArgs,
}

pub fn gradcam(args: GradcamArgs) -> anyhow::Result<()> {
    crate::error::check_output_dir(&args.map.out, "--out")?;
    let device = args.map.device.device()?;
    let inputs = match (args.data, args.samples) {
        (Some(dir), Some(samples)) => Inputs::TestSet { dir, labels: args.map.labels, samples, seed: args.seed },
        _ => Inputs::Files {
            paths: args.images,
            size: if args.no_resize { SizePolicy::Refuse } else { SizePolicy::Resize },
        },
    };
    let request = HeatmapRequest {
        checkpoint: args.checkpoint,
        layer: args.layer,
        class: args.map.class.clone(),
        method: args.map.method,
        inputs,
        out: args.map.out.clone(),
        style: args.map.style(),
        columns: args.map.columns as usize,
        batch_size: args.map.batch_size as usize,
    };
    let report = heatmaps::run(&request, &device)?;
    for path in &report.resized {
        eprintln!("note: {} resized to the model's input size", path.display());
    }
    println!(
        "{} of {} at layer {} ({}x{} maps), {}",
        report.method.title(),
        report.checkpoint.display(),
        report.layer,
        report.map_shape[0],
        report.map_shape[1],
        report.target
    );
    for s in &report.samples {
        println!(
            "  {:<24} true {:<12} pred {:<12} {:5.1}%  map of {:<12} peak at {:?}",
            s.id,
            s.label.as_deref().unwrap_or("?"),
            s.predicted,
            100.0 * s.confidence,
            s.target,
            s.peak
        );
    }
    println!("wrote {} maps and overlays, {} and gradcam.json in {}", report.samples.len(), report.grid.display(), request.out.display());
    Ok(())
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let device = args.map.device.device()?;
    let [a, b]: [PathBuf; 2] = args
        .checkpoint
        .try_into()
        .map_err(|given: Vec<PathBuf>| anyhow::anyhow!("--checkpoint: give exactly two (A and B), got {}", given.len()))?;
    let names = match args.names {
        None => None,
        Some(names) => Some(
            <[String; 2]>::try_from(names)
                .map_err(|given| anyhow::anyhow!("--names: give two names (A,B), got {}", given.len()))?,
        ),
    };
    let request = CompareRequest {
        checkpoints: [a, b],
        names,
        data: args.data,
        labels: args.map.labels,
        layers: args.layer,
        class: args.map.class.clone(),
        method: args.map.method,
        samples: args.samples as usize,
        seed: args.seed,
        out: args.map.out.clone(),
        style: args.map.style(),
        columns: args.map.columns as usize,
        batch_size: args.map.batch_size as usize,
    };
    let report = compare::run(&request, &device)?;
    let [ma, mb] = &report.models;
    let t = &report.agreement;
    println!("A = {} ({}, layer {}): test accuracy {:.2}%", ma.name, ma.checkpoint.display(), ma.layer, 100.0 * ma.accuracy);
    println!("B = {} ({}, layer {}): test accuracy {:.2}%", mb.name, mb.checkpoint.display(), mb.layer, 100.0 * mb.accuracy);
    println!("on {} test images:  both right {}  A only {}  B only {}  both wrong {}", report.test_images, t.both_right, t.a_only, t.b_only, t.both_wrong);
    let m = &report.mcnemar;
    println!(
        "McNemar: chi2 = {:.3} (continuity-corrected), {}; exact binomial {}",
        m.chi_square,
        format_p(m.chi_square_p),
        format_p(m.exact_p)
    );
    for g in &report.galleries {
        println!("{}: {} images, {} shown in {}", g.kind, g.count, g.shown.len(), g.png.display());
    }
    println!("details in {}", request.out.join("compare.json").display());
    Ok(())
}
