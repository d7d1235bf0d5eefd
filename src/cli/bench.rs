//! `visionnet bench`.

use crate::bench::{BenchSpec, train_step_memory, train_steps};
use crate::device::DeviceKind;
use crate::model::{ModelOptions, ModelSpec};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model to time.
    #[arg(long, default_value = "cnn")]
    model: String,
    #[command(flatten)]
    options: ModelOptions,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Side of the square RGB input images in pixels (the attention blocks' cost grows with
    /// its square, the pixel count).
    #[arg(long, value_name = "PIXELS", default_value_t = 32)]
    image_size: usize,
    /// Instead of timing, measure the peak resident memory of one training step (Linux:
    /// /proc/self/status VmHWM). Run one model per process.
    #[arg(long)]
    memory: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

const MIB: f64 = (1u64 << 20) as f64;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let spec = BenchSpec {
        model: ModelSpec { name: args.model, options: args.options },
        batch_size: args.batch_size,
        warmup: args.warmup,
        steps: args.steps,
        num_classes: 10,
        input: [3, args.image_size, args.image_size],
    };
    let device = args.device.device()?;
    if args.memory {
        let m = train_step_memory(&spec, &device)?;
        if args.json {
            println!("{}", serde_json::json!({
                "model": spec.model.name, "attn_impl": spec.model.options.attn_impl, "batch_size": spec.batch_size,
                "image_size": args.image_size, "before_bytes": m.before,
                "peak_bytes": m.peak, "step_peak_bytes": m.step_peak(), "peak_reset": m.peak_reset,
            }));
            return Ok(());
        }
        let scope = if m.peak_reset { "one training step" } else { "the process (peak could not be reset)" };
        println!(
            "peak resident memory of {scope}: {:.1} MiB (before the step: {:.1} MiB; the step added {:.1} MiB)",
            m.peak as f64 / MIB,
            m.before as f64 / MIB,
            m.step_peak() as f64 / MIB
        );
        return Ok(());
    }
    let t = train_steps(&spec, &device)?;
    if args.json {
        println!("{}", serde_json::json!({
            "model": spec.model.name, "attn_impl": spec.model.options.attn_impl, "batch_size": spec.batch_size,
            "image_size": args.image_size, "median_seconds": t.median_seconds, "images_per_second": t.images_per_second,
        }));
        return Ok(());
    }
    println!("train step: {:.4} s median, {:.1} images/s", t.median_seconds, t.images_per_second);
    Ok(())
}
