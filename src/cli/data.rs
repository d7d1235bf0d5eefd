//! `visionnet data fetch` and `visionnet data inspect`.

use std::path::PathBuf;

use crate::data::inspect::DataSummary;
use crate::data::{Cifar100Labels, Dataset, fetch};

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Download an official CIFAR archive, check its MD5, and unpack it.
    Fetch(FetchArgs),
    /// Show a dataset's splits, classes, counts per class, image size and channel statistics.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Which dataset: cifar10 or cifar100.
    #[arg(value_parser = ["cifar10", "cifar100"])]
    dataset: String,
    /// Folder to unpack into.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Download from this address instead of the official one (a mirror).
    #[arg(long)]
    url: Option<String>,
    /// Expected MD5 of the archive at --url (default: the official archive's).
    #[arg(long)]
    md5: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Dataset folder.
    dir: PathBuf,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value_t = Cifar100Labels::Fine)]
    labels: Cifar100Labels,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Fetch(args) => {
            let archive = fetch::archive(&args.dataset)?;
            let dir = fetch::fetch(archive, &args.to, args.url.as_deref(), args.md5.as_deref())?;
            println!("{} ready in {}", archive.name, dir.display());
        }
        DataCommand::Inspect(args) => {
            let data = Dataset::load(&args.dir, args.labels)?;
            let summary = DataSummary::of(&data);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{summary}");
            }
        }
    }
    Ok(())
}
