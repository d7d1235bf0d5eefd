//! Training curves as the study's Figures 3 and 4: per dataset (and recipe), training and
//! validation accuracy and loss per epoch, one line per model (mean over seeds, with a band of
//! one standard deviation where there are several seeds). Drawn with plotters, as SVG and PNG.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::analysis::{Curve, CurveFigure, ModelCurves};
use crate::error::{Error, Result};

/// DejaVu Sans (Bitstream Vera license, `assets/fonts/LICENSE`): PNG text needs
/// a font, and embedding one keeps figures identical on every machine.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Registers the embedded font under the family name the figures' text uses (once).
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::data(
            "assets/fonts/DejaVuSans.ttf",
            "the embedded font does not parse",
        ))
    }
}

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (1200, 860);

/// Tableau 10, the usual categorical palette of matplotlib.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`-th model.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn plot_error<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::data(what, format!("cannot draw the figure: {e:?}"))
}

/// The four panels of a figure, each a curve of every model.
const PANELS: [(&str, &str); 4] = [
    ("training accuracy", "accuracy (%)"),
    ("validation accuracy", "accuracy (%)"),
    ("training loss", "loss"),
    ("validation loss", "loss"),
];

fn panel_curve(m: &ModelCurves, panel: usize) -> &Curve {
    match panel {
        0 => &m.train_accuracy,
        1 => &m.val_accuracy,
        2 => &m.train_loss,
        _ => &m.val_loss,
    }
}

/// Draws `fig` on `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &CurveFigure,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let seeds: Vec<usize> = fig.models.iter().map(|m| m.seeds).collect();
    let seeds_note = if seeds.iter().all(|&s| s == 1) {
        "one seed per model".to_string()
    } else {
        "mean over seeds, band: ±1 std".to_string()
    };
    let title = format!("{} · recipe {} · {seeds_note}", fig.dataset, fig.recipe);
    let (top, rest) = root.split_vertically(44);
    top.draw_text(&title, &(FONT, 24).into_font().color(&BLACK), (16, 10))?;
    // Legend strip at the bottom.
    let rows = fig.models.len().div_ceil(4).max(1) as u32;
    let (panels, legend) = rest.split_vertically(rest.dim_in_pixel().1 - 14 - 26 * rows);
    let max_epoch = fig
        .models
        .iter()
        .flat_map(|m| m.train_accuracy.epochs.last().copied())
        .max()
        .unwrap_or(1)
        .max(2);
    for (p, area) in panels.split_evenly((2, 2)).iter().enumerate() {
        let (name, y_desc) = PANELS[p];
        let curves: Vec<&Curve> = fig.models.iter().map(|m| panel_curve(m, p)).collect();
        let lows = curves
            .iter()
            .flat_map(|c| c.mean.iter().zip(&c.std).map(|(m, s)| m - s));
        let highs = curves
            .iter()
            .flat_map(|c| c.mean.iter().zip(&c.std).map(|(m, s)| m + s));
        let (lo, hi) = (
            lows.fold(f64::INFINITY, f64::min),
            highs.fold(f64::NEG_INFINITY, f64::max),
        );
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let pad = ((hi - lo) * 0.06).max(1e-3);
        let (y0, y1) = if p < 2 {
            ((lo - pad).max(0.0), (hi + pad).min(100.0))
        } else {
            ((lo - pad).max(0.0), hi + pad)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(name, (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..max_epoch as f64, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(max_epoch.min(12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .y_labels(8)
            // Only the labelled grid lines: ten minor lines per label drown the curves.
            .max_light_lines(1)
            .bold_line_style(RGBColor(225, 225, 225).stroke_width(1))
            .draw()?;
        for (i, c) in curves.iter().enumerate() {
            if c.epochs.is_empty() {
                continue;
            }
            let colour = color(i);
            if c.std.iter().any(|&s| s > 0.0) {
                let upper = c
                    .epochs
                    .iter()
                    .zip(c.mean.iter().zip(&c.std))
                    .map(|(&e, (m, s))| (e as f64, m + s));
                let lower = c
                    .epochs
                    .iter()
                    .zip(c.mean.iter().zip(&c.std))
                    .rev()
                    .map(|(&e, (m, s))| (e as f64, m - s));
                chart.draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    colour.mix(0.15).filled(),
                )))?;
            }
            let points: Vec<(f64, f64)> = c
                .epochs
                .iter()
                .zip(&c.mean)
                .map(|(&e, &m)| (e as f64, m))
                .collect();
            chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
            chart.draw_series(
                points
                    .into_iter()
                    .map(|pt| Circle::new(pt, 3, colour.filled())),
            )?;
        }
    }
    // Legend: a line and the model's label (and its seeds), four per row.
    let (lw, _) = legend.dim_in_pixel();
    let cell = (lw as i32 - 40) / 4;
    for (i, m) in fig.models.iter().enumerate() {
        let (row, col) = ((i / 4) as i32, (i % 4) as i32);
        let (x, y) = (20 + col * cell, 6 + row * 26);
        legend.draw(&PathElement::new(
            vec![(x, y + 10), (x + 34, y + 10)],
            color(i).stroke_width(3),
        ))?;
        let text = format!(
            "{} ({} seed{})",
            m.model,
            m.seeds,
            if m.seeds == 1 { "" } else { "s" }
        );
        legend.draw_text(
            &text,
            &(FONT, 17).into_font().color(&BLACK),
            (x + 42, y + 1),
        )?;
    }
    root.present()?;
    Ok(())
}

/// The figure as an SVG document.
pub fn svg(fig: &CurveFigure) -> Result<String> {
    register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, fig).map_err(plot_error(&fig.stem))?;
    }
    Ok(out)
}

/// The figure as a PNG file's bytes.
pub fn png(fig: &CurveFigure) -> Result<Vec<u8>> {
    register_font()?;
    let (w, h) = SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        draw(&root, fig).map_err(plot_error(&fig.stem))?;
    }
    let image = image::RgbImage::from_raw(w, h, pixels).expect("the buffer is w x h x 3");
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::data(&fig.stem, format!("cannot encode the PNG: {e}")))?;
    Ok(bytes.into_inner())
}
