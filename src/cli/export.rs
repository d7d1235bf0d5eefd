//! `visionnet export`.

use std::path::PathBuf;

use crate::device::DeviceKind;
use crate::train::export;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The safetensors file to write; the sidecar is FILE.json.
    #[arg(long, value_name = "FILE.safetensors")]
    to: PathBuf,
    /// Device the checkpoint is read on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let report = export::export(&args.checkpoint, &args.to, &device)?;
    println!(
        "{} tensors under {} names in {}; sidecar {}",
        report.tensors,
        report.naming,
        report.file.display(),
        report.sidecar.display()
    );
    Ok(())
}
