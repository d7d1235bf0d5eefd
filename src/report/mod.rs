//! The report of a folder of runs: the study's Table 1 (test accuracy, mean ± std over seeds),
//! its Figures 3 and 4 (training curves, PNG and SVG, drawn with plotters), each model's cost,
//! and each model against its plain twin with a paired bootstrap interval and McNemar's test.
//!
//! `REPORT_DIR` (default `RUNS_DIR/report`) receives `report.html` (self-contained: figures
//! inlined as SVG), `report.md` (figures linked as the PNG files), `report.json` (every number)
//! and `curves-<dataset>-<recipe>.{png,svg}`.

pub mod analysis;
pub mod plots;
pub mod render;
pub mod runs;

use std::fs;
use std::path::{Path, PathBuf};

pub use analysis::{Analysis, StatsOptions};

use crate::error::{IoContext, Result};
use crate::io::{write_atomic, write_json};

/// Where and how to build the report.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Output folder (default: `RUNS_DIR/report`).
    pub out: Option<PathBuf>,
    /// Bootstrap and confidence settings.
    pub stats: StatsOptions,
}

/// The files written.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    /// The folder.
    pub dir: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// Figures (PNG and SVG).
    pub figures: Vec<PathBuf>,
    /// The accuracy table as Markdown.
    pub table: String,
    /// Runs found, and how many finished.
    pub runs: (usize, usize),
}

/// Builds the report of the runs in `runs_dir`.
pub fn build(runs_dir: &Path, options: &ReportOptions) -> Result<ReportFiles> {
    let collection = runs::collect(runs_dir)?;
    let analysis = analysis::analyse(&collection, &options.stats);
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| runs_dir.join("report"));
    fs::create_dir_all(&dir).at(&dir)?;

    let mut figures = Vec::new();
    let mut svgs = Vec::new();
    for fig in &analysis.figures {
        let svg = plots::svg(fig)?;
        let svg_path = dir.join(format!("{}.svg", fig.stem));
        write_atomic(&svg_path, svg.as_bytes())?;
        let png_path = dir.join(format!("{}.png", fig.stem));
        write_atomic(&png_path, &plots::png(fig)?)?;
        figures.extend([png_path, svg_path]);
        svgs.push((fig.stem.clone(), svg));
    }
    let markdown = dir.join("report.md");
    write_atomic(
        &markdown,
        render::markdown(&collection, &analysis).as_bytes(),
    )?;
    let html = dir.join("report.html");
    write_atomic(
        &html,
        render::html(&collection, &analysis, &svgs).as_bytes(),
    )?;
    let json = dir.join("report.json");
    write_json(&json, &analysis)?;
    Ok(ReportFiles {
        dir,
        html,
        markdown,
        json,
        figures,
        table: render::accuracy_markdown(&analysis),
        runs: (
            collection.runs.len(),
            collection.runs.iter().filter(|r| r.finished()).count(),
        ),
    })
}
