//! `visionnet gradcam` and `visionnet compare`.

use std::path::PathBuf;

use crate::data::Cifar100Labels;
use crate::data::image_file::SizePolicy;
use crate::device::DeviceKind;
use crate::explain::compare::{self, CompareRequest};
use crate::explain::faithfulness::Metric;
use crate::explain::heatmaps::{self, HeatmapRequest, Inputs, MethodMetrics, MetricsReport};
use crate::explain::sanity::SanityReport;
use crate::explain::{CamMethod, Colormap, OverlayStyle};
use crate::stats::bootstrap::MeanInterval;
use crate::stats::format_p;
use clap::ValueEnum;

/// How maps are computed and drawn (shared by both commands).
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// Class the maps explain: `top` (the prediction), `label` (the true class), a class index
    /// or a class name.
    #[arg(long, default_value = "top", value_name = "top|label|INDEX|NAME")]
    class: String,
    /// Methods, comma-separated or the flag repeated (`all`: every method). The first draws
    /// compare's galleries.
    #[arg(long = "method", value_delimiter = ',', default_value = "gradcam", value_parser = parse_method, value_name = "METHOD")]
    methods: Vec<Vec<CamMethod>>,
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

/// A method name, or `all`; unknown names are refused with the list of valid ones.
fn parse_method(text: &str) -> Result<Vec<CamMethod>, String> {
    if text == "all" {
        return Ok(CamMethod::ALL.to_vec());
    }
    CamMethod::ALL
        .iter()
        .copied()
        .find(|m| m.name() == text)
        .map(|m| vec![m])
        .ok_or_else(|| {
            let names: Vec<&str> = CamMethod::ALL.iter().map(|m| m.name()).collect();
            format!(
                "unknown method '{text}'; the methods are: {}, all",
                names.join(", ")
            )
        })
}

/// A faithfulness measure, or `all`.
fn parse_metric(text: &str) -> Result<Vec<Metric>, String> {
    if text == "all" {
        return Ok(Metric::ALL.to_vec());
    }
    Metric::from_str(text, false).map(|m| vec![m]).map_err(|_| {
        let names: Vec<String> = Metric::ALL
            .iter()
            .map(|m| m.to_possible_value().expect("named").get_name().to_string())
            .collect();
        format!(
            "unknown metric '{text}'; the metrics are: {}, all",
            names.join(", ")
        )
    })
}

/// The measures asked for, each once, in order (none when the flag is absent).
fn unique_metrics(given: Option<Vec<Vec<Metric>>>) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    given.into_iter().flatten().flatten().for_each(|m| {
        if !out.contains(&m) {
            out.push(m)
        }
    });
    out
}

fn unit_interval(text: &str) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1]"))
    }
}

impl MapArgs {
    /// The methods, in the order given, each once.
    fn methods(&self) -> Vec<CamMethod> {
        let mut out = Vec::new();
        for m in self.methods.iter().flatten() {
            if !out.contains(m) {
                out.push(*m);
            }
        }
        out
    }

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
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "images",
        requires = "samples"
    )]
    data: Option<PathBuf>,
    /// Test images to explain, drawn at random (seeded by --seed).
    #[arg(long, value_name = "N", requires = "data")]
    samples: Option<usize>,
    /// Seed of the choice of test images (and of RandomCAM, ROAD's noise and --sanity's
    /// random weights).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Measure every method's faithfulness on all the images: deletion, insertion, road,
    /// confidence, comma-separated (no value or `all`: every one). Writes metrics.csv and the
    /// summary, with 95% bootstrap intervals, to gradcam.json.
    #[arg(long, num_args = 0.., value_delimiter = ',', default_missing_value = "all", value_parser = parse_metric, value_name = "METRIC")]
    metrics: Option<Vec<Vec<Metric>>>,
    /// Run the cascading-randomisation sanity check (Adebayo et al. 2018) on the first --show
    /// images: sanity.png, sanity.csv and a summary in gradcam.json.
    #[arg(long)]
    sanity: bool,
    /// Images whose maps, overlays and grid tiles are written (the first ones).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    show: u64,
    #[command(flatten)]
    map: MapArgs,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Checkpoints A and B (checkpoint or run folders): give the flag twice. Or use
    /// --checkpoint-a / --checkpoint-b with several seeds each.
    #[arg(long, value_name = "PATH", num_args = 1, required_unless_present_all = ["checkpoint_a", "checkpoint_b"], conflicts_with_all = ["checkpoint_a", "checkpoint_b"])]
    checkpoint: Vec<PathBuf>,
    /// A's checkpoints, several seeds of one model (space-separated or the flag repeated): the
    /// first draws the galleries, all enter the seed-aware map comparison.
    #[arg(long, value_name = "RUN", num_args = 1.., requires = "checkpoint_b")]
    checkpoint_a: Vec<PathBuf>,
    /// B's checkpoints, several seeds of one model.
    #[arg(long, value_name = "RUN", num_args = 1.., requires = "checkpoint_a")]
    checkpoint_b: Vec<PathBuf>,
    /// Test images of the seed-aware map comparison's random sample (0: only the shown ones;
    /// default 500, or every test image of a smaller test set).
    #[arg(long)]
    stability: Option<usize>,
    /// Measure the faithfulness of A's and B's first checkpoints on the --stability sample:
    /// deletion, insertion, road, confidence, comma-separated (no value or `all`: every one).
    #[arg(long, num_args = 0.., value_delimiter = ',', default_missing_value = "all", value_parser = parse_metric, value_name = "METRIC")]
    metrics: Option<Vec<Vec<Metric>>>,
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
        (Some(dir), Some(samples)) => Inputs::TestSet {
            dir,
            labels: args.map.labels,
            samples,
            seed: args.seed,
        },
        _ => Inputs::Files {
            paths: args.images,
            size: if args.no_resize {
                SizePolicy::Refuse
            } else {
                SizePolicy::Resize
            },
        },
    };
    let request = HeatmapRequest {
        checkpoint: args.checkpoint,
        layer: args.layer,
        class: args.map.class.clone(),
        methods: args.map.methods(),
        metrics: unique_metrics(args.metrics),
        sanity: args.sanity,
        show: args.show as usize,
        seed: args.seed,
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
    let titles: Vec<&str> = report.methods.iter().map(|m| m.title()).collect();
    println!(
        "{} of {} at layer {} ({}x{} maps), {}",
        titles.join(", "),
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
    if let Some(metrics) = &report.metrics {
        print_metrics(metrics);
    }
    if let Some(sanity) = &report.sanity {
        print_sanity(sanity);
    }
    println!(
        "wrote {} maps and overlays, {} and gradcam.json in {}",
        report.samples.len(),
        report.grid.display(),
        request.out.display()
    );
    Ok(())
}

/// The faithfulness table: one row per method, each measure's mean and interval.
fn print_metrics(metrics: &MetricsReport) {
    println!(
        "faithfulness on {} images (mean [95% bootstrap interval]):",
        metrics.methods.first().map(|m| m.images).unwrap_or(0)
    );
    print_metric_rows(&metrics.methods);
    if let Some(note) = &metrics.note {
        println!("  note: {note}");
    }
    println!("per-image values in {}", metrics.csv.display());
}

/// One line per method: each measure's mean and interval.
fn print_metric_rows(methods: &[MethodMetrics]) {
    let show = |v: &Option<MeanInterval>, d: usize| {
        v.as_ref()
            .map(|v| v.display(d))
            .unwrap_or_else(|| "-".to_string())
    };
    for m in methods {
        println!(
            "  {:<12} deletion {}  insertion {}  ROAD MoRF {}  LeRF {}  combined {}  drop {}%  increase {}%  ({:.1} s maps, {:.1} s measures)",
            m.method.name(),
            show(&m.deletion_auc, 3),
            show(&m.insertion_auc, 3),
            show(&m.road_morf, 3),
            show(&m.road_lerf, 3),
            show(&m.road, 3),
            show(&m.drop, 1),
            show(&m.increase, 1),
            m.seconds_maps,
            m.seconds_measures
        );
    }
}

/// The sanity check: each method's Spearman correlation per depth, and the flagged ones.
fn print_sanity(sanity: &SanityReport) {
    println!(
        "sanity check on {} images: groups randomised from the top: {} ({} above the layer)",
        sanity.images,
        sanity.groups.join(", "),
        sanity.groups_above_layer
    );
    for m in &sanity.methods {
        let rhos: Vec<String> = m
            .depths
            .iter()
            .map(|d| {
                d.spearman
                    .as_ref()
                    .map(|s| format!("{:.2}", s.mean))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        println!(
            "  {:<12} Spearman by depth: {}{}",
            m.method.name(),
            rhos.join(" "),
            if m.unchanged { "  <- UNCHANGED" } else { "" }
        );
    }
    if !sanity.flagged.is_empty() {
        let names: Vec<&str> = sanity.flagged.iter().map(|m| m.name()).collect();
        println!(
            "  flagged: {} (maps barely change with every layer above the explained one random)",
            names.join(", ")
        );
    }
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let device = args.map.device.device()?;
    let checkpoints = if args.checkpoint.is_empty() {
        [args.checkpoint_a, args.checkpoint_b]
    } else {
        let [a, b]: [PathBuf; 2] = args
            .checkpoint
            .try_into()
            .map_err(|given: Vec<PathBuf>| anyhow::anyhow!("--checkpoint: give exactly two (A and B), got {}; for several seeds per side use --checkpoint-a and --checkpoint-b", given.len()))?;
        [vec![a], vec![b]]
    };
    let names = match args.names {
        None => None,
        Some(names) => Some(<[String; 2]>::try_from(names).map_err(|given| {
            anyhow::anyhow!("--names: give two names (A,B), got {}", given.len())
        })?),
    };
    let request = CompareRequest {
        checkpoints,
        names,
        data: args.data,
        labels: args.map.labels,
        layers: args.layer,
        class: args.map.class.clone(),
        methods: args.map.methods(),
        stability: args.stability,
        metrics: unique_metrics(args.metrics),
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
    println!(
        "A = {} ({}, layer {}): test accuracy {:.2}%",
        ma.name,
        ma.checkpoint.display(),
        ma.layer,
        100.0 * ma.accuracy
    );
    println!(
        "B = {} ({}, layer {}): test accuracy {:.2}%",
        mb.name,
        mb.checkpoint.display(),
        mb.layer,
        100.0 * mb.accuracy
    );
    println!(
        "on {} test images:  both right {}  A only {}  B only {}  both wrong {}",
        report.test_images, t.both_right, t.a_only, t.b_only, t.both_wrong
    );
    for (tag, side) in ["A", "B"].iter().zip(&report.checkpoints) {
        if side.len() > 1 {
            let acc: Vec<String> = side
                .iter()
                .map(|c| format!("{} {:.2}%", c.name, 100.0 * c.accuracy))
                .collect();
            println!("{tag}'s checkpoints: {}", acc.join(", "));
        }
    }
    let m = &report.mcnemar;
    println!(
        "McNemar: chi2 = {:.3} (continuity-corrected), {} ({})",
        m.chi2_corrected,
        format_p(m.p_value),
        if m.exact {
            "exact binomial, fewer than 25 disagreements"
        } else {
            "chi-square"
        }
    );
    for s in &report.stability {
        println!(
            "map similarity, {} on {} {} images (mean [95% interval]; within = pairs of seeds of one model):",
            s.method.name(),
            s.count,
            s.images
        );
        let show = |v: &Option<MeanInterval>| {
            v.as_ref()
                .map(|v| v.display(3))
                .unwrap_or_else(|| "-".to_string())
        };
        for m in &s.measures {
            println!(
                "  {:<10} within A {}  within B {}  between {}  within - between {}{}",
                m.measure,
                show(&m.within_a),
                show(&m.within_b),
                show(&m.between),
                show(&m.excess),
                if m.exceeds {
                    "  -> A-B differ more than seeds"
                } else {
                    ""
                }
            );
        }
        if let Some(note) = &s.note {
            println!("  note: {note}");
        }
    }
    if let Some([a, b]) = &report.metrics {
        for (tag, side) in [("A", a), ("B", b)] {
            println!("{tag}:");
            print_metric_rows(side);
        }
    }
    for g in &report.galleries {
        println!(
            "{}: {} images, {} shown in {}",
            g.kind,
            g.count,
            g.shown.len(),
            g.png.display()
        );
    }
    println!("details in {}", request.out.join("compare.json").display());
    Ok(())
}
