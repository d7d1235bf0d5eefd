//! `visionnet bench`.

use std::time::Duration;

use crate::bench::peak::fma_peak;
use crate::bench::{BenchSpec, Mode, gflops_per_second, step_flops, time_steps, train_step_memory};
use crate::device::DeviceKind;
use crate::model::{ModelOptions, ModelSpec};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model to time.
    #[arg(long, default_value = "cnn")]
    model: String,
    #[command(flatten)]
    options: ModelOptions,
    /// What to time: training steps (forward, backward, Adam) or inference (forward only).
    #[arg(long, value_enum, default_value_t = Mode::Train)]
    mode: Mode,
    /// Images per step.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Side of the square RGB input images in pixels (the attention blocks' cost grows with
    /// its square, the pixel count).
    #[arg(long, value_name = "PIXELS", default_value_t = 32)]
    image_size: usize,
    /// Instead of timing, measure the peak resident memory of one training step (Linux:
    /// /proc/self/status VmHWM). Run one model per process.
    #[arg(long)]
    memory: bool,
    /// Instead of timing a model, measure this CPU's FP32 multiply-add peak on all threads
    /// (the widest vector path it has, chosen at run time), to set a step's GFLOP/s against.
    #[arg(long, conflicts_with = "memory")]
    peak: bool,
    /// How long `--peak` runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = positive_seconds)]
    peak_seconds: f64,
    /// Print one JSON object (the fields of bench/pytorch_reference.py's, for
    /// scripts/bench_vs_pytorch.sh).
    #[arg(long)]
    json: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

const MIB: f64 = (1u64 << 20) as f64;

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 600.0 => Ok(v),
        Ok(v) => Err(format!("{v} must be more than 0 and at most 600 seconds")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.peak {
        let p = fma_peak(Duration::from_secs_f64(args.peak_seconds));
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "engine": "visionnet", "kind": "peak", "version": env!("CARGO_PKG_VERSION"),
                    "path": p.path.name(), "lanes": p.path.lanes(), "threads": p.threads,
                    "seconds": p.seconds, "gflops_per_second": p.gflops_per_second,
                    "on_cpu_gflops_per_second": p.on_cpu_gflops_per_second,
                })
            );
        } else {
            println!(
                "FP32 multiply-add peak: {:.1} GFLOP/s on {} threads ({} path, {} lanes; {:.1} s)",
                p.gflops_per_second,
                p.threads,
                p.path.name(),
                p.path.lanes(),
                p.seconds
            );
            if let Some(on_cpu) = p.on_cpu_gflops_per_second {
                println!(
                    "  {on_cpu:.1} GFLOP/s over the time each thread was on a CPU (the hardware's peak; \
                     the wall-clock figure is lower when other work shares the cores)"
                );
            }
        }
        return Ok(());
    }
    let spec = BenchSpec {
        model: ModelSpec {
            name: args.model,
            options: args.options,
        },
        batch_size: args.batch_size as usize,
        warmup: args.warmup,
        steps: args.steps as usize,
        num_classes: 10,
        input: [3, args.image_size, args.image_size],
    };
    let device = args.device.device()?;
    if args.memory {
        let m = train_step_memory(&spec, &device)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "model": spec.model.name, "attn_impl": spec.model.options.attn_impl, "batch_size": spec.batch_size,
                    "image_size": args.image_size, "before_bytes": m.before,
                    "peak_bytes": m.peak, "step_peak_bytes": m.step_peak(), "peak_reset": m.peak_reset,
                })
            );
            return Ok(());
        }
        let scope = if m.peak_reset {
            "one training step"
        } else {
            "the process (peak could not be reset)"
        };
        println!(
            "peak resident memory of {scope}: {:.1} MiB (before the step: {:.1} MiB; the step added {:.1} MiB)",
            m.peak as f64 / MIB,
            m.before as f64 / MIB,
            m.step_peak() as f64 / MIB
        );
        return Ok(());
    }
    let t = time_steps(&spec, args.mode, &device)?;
    let cost = crate::model::ModelCost::of(&spec.model, spec.num_classes, spec.input, &device)?;
    let flops = step_flops(cost.flops, spec.batch_size, args.mode);
    let gflops = gflops_per_second(flops, t.median_seconds);
    // The vector path the CPU kernels chose at run time (VISIONNET_SIMD caps it): a speed figure
    // belongs to a CPU and a path.
    let kernels = visionnet_kernels::simd::Simd::detect().name();
    if args.json {
        let params = cost.params;
        println!(
            "{}",
            serde_json::json!({
                "engine": "visionnet", "version": env!("CARGO_PKG_VERSION"), "device": args.device,
                "model": spec.model.name, "attn_impl": spec.model.options.attn_impl, "mode": args.mode,
                "batch_size": spec.batch_size, "image_size": args.image_size, "threads": rayon::current_num_threads(),
                "params": params, "median_seconds": t.median_seconds, "images_per_second": t.images_per_second,
                "rss_before_bytes": t.rss_before_bytes, "peak_rss_bytes": t.peak_rss_bytes, "peak_reset": t.peak_reset,
                "forward_flops_per_image": cost.flops, "step_flops": flops, "gflops_per_second": gflops,
                "steps": spec.steps, "cpu_seconds": t.cpu_seconds, "kernels": kernels,
                "images_per_cpu_second": t.cpu_seconds.map(|s| (spec.steps * spec.batch_size) as f64 / s),
            })
        );
        return Ok(());
    }
    let mode = match args.mode {
        Mode::Train => "train step",
        Mode::Infer => "inference step",
    };
    println!(
        "{mode}: {:.4} s median, {:.1} images/s, {gflops:.1} GFLOP/s (nominal direct-conv FLOPs; \
         `--peak` measures this CPU's); peak resident memory {:.1} MiB ({:.1} MiB before the timed steps); \
         {kernels} kernels",
        t.median_seconds,
        t.images_per_second,
        t.peak_rss_bytes as f64 / MIB,
        t.rss_before_bytes as f64 / MIB
    );
    Ok(())
}
