//! `visionnet bench`.

use crate::bench::{BenchSpec, train_steps};
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
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let spec = BenchSpec {
        model: ModelSpec { name: args.model, options: args.options },
        batch_size: args.batch_size,
        warmup: args.warmup,
        steps: args.steps,
        num_classes: 10,
        input: [3, 32, 32],
    };
    let t = train_steps(&spec, &args.device.device()?)?;
    println!("train step: {:.4} s median, {:.1} images/s", t.median_seconds, t.images_per_second);
    Ok(())
}
